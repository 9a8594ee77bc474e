-- KEYS: held set. ARGV: now, until when the taker holds them, how many at most.
-- Takes the held verifications due by now: each is scored with the taker's deadline, so
-- no other release takes it meanwhile, and one whose taker died is due again after it.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
end
return ids
