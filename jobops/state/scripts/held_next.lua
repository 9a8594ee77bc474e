-- KEYS: the id's arguments, held set, pending set, pending URN counts, the next round's
-- run key, this round's run key. ARGV: verification id, the next round's arguments
-- (JSON), when it is due, the arguments' TTL (s), its URN count, this run's holder.
-- Holds a verification's next round, only while this run still holds its own round and
-- the next one has not run: a run that stalled past its lease (another run settled its
-- round meanwhile), or a run of an earlier round come back after its worker died, must
-- not register a round again. Returns 1 if held, 0 if not.
if redis.call('EXISTS', KEYS[5]) == 1 or redis.call('GET', KEYS[6]) ~= ARGV[6] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[5])
return 1
