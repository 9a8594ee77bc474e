-- KEYS: items list, batch hash, open set, sealed hash, sealed-at set, then one marker per
-- outcome. ARGV: batch id, size, seconds (ms), signature JSON, ttl (s), max bytes, then
-- the outcomes' JSON. Returns the ids of the batches it sealed. A batch is sealed once it
-- holds ``size`` outcomes, or before an outcome would take it past ``max bytes``: no
-- sealed batch is assembled from more than that (one bigger outcome goes alone).
-- uses: now_ms, batch_seal
local now_ms = redis_now_ms()
local size, ttl, max_bytes = tonumber(ARGV[2]), tonumber(ARGV[5]), tonumber(ARGV[6])
local added = 0
local done = {}
for i = 6, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ttl) then
    if added == 0 then
      redis.call('HSET', KEYS[2], 'signature', ARGV[4])
      redis.call('HSETNX', KEYS[2], 'seq', now_ms)
    end
    added = added + 1
    local item = ARGV[i + 1]
    local held = redis.call('LLEN', KEYS[1])
    if held > 0 and tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0') + #item > max_bytes
    then
      done[#done + 1] = seal(ARGV[1], KEYS[2], KEYS[1], KEYS[4], KEYS[5], now_ms)
      held = 0
    end
    redis.call('RPUSH', KEYS[1], item)
    redis.call('HINCRBY', KEYS[2], 'bytes', #item)
    if held + 1 >= size then
      done[#done + 1] = seal(ARGV[1], KEYS[2], KEYS[1], KEYS[4], KEYS[5], now_ms)
    end
  end
end
if added == 0 then return {} end
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[1], ttl)
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[3], ARGV[1])
elseif #done > 0 then
  -- What is left arrived after the last seal, in this call: its deadline starts now.
  redis.call('ZADD', KEYS[3], now_ms + tonumber(ARGV[3]), ARGV[1])
else
  redis.call('ZADD', KEYS[3], 'NX', now_ms + tonumber(ARGV[3]), ARGV[1])
end
return done
