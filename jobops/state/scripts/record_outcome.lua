-- KEYS: outcome record, job index, job state hash. ARGV: outcome JSON, ttl s, task URN
-- ('' if none: no index entry), state field ('' if the outcome says nothing of the job's
-- state), state entry JSON, operation time (epoch s).
-- One command per outcome, whatever it touches. The state keeps, per field, what the
-- most recent operation set, whatever order the outcomes arrive in.
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('SADD', KEYS[2], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
if ARGV[4] ~= '' then
  for _, field in ipairs({ARGV[4], '*'}) do
    local old = redis.call('HGET', KEYS[3], field)
    if (not old) or cjson.decode(old)['at'] <= tonumber(ARGV[6]) then
      redis.call('HSET', KEYS[3], field, ARGV[5])
    end
  end
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return 1
