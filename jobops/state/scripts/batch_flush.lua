-- KEYS: open set, sealed hash, sealed-at set. ARGV: batch key prefix, limit, republish
-- after (ms). Seals every open batch past its deadline, claims sealed batches nobody
-- published (pushing their time on, so one flusher takes each), and returns
-- {ms until the next deadline or -1, sealed ids, claimed ids}.
-- uses: now_ms, batch_seal
local now_ms = redis_now_ms()
local limit = tonumber(ARGV[2])
local fresh, stale = {}, {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, limit)
for _, bid in ipairs(due) do
  redis.call('ZREM', KEYS[1], bid)
  local list = ARGV[1] .. bid .. ':items'
  if redis.call('LLEN', list) > 0 then
    fresh[#fresh + 1] = seal(bid, ARGV[1] .. bid, list, KEYS[2], KEYS[3], now_ms)
  end
end
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now_ms - tonumber(ARGV[3]),
                       'LIMIT', 0, limit)
for _, sid in ipairs(old) do
  redis.call('ZADD', KEYS[3], now_ms, sid)
  stale[#stale + 1] = sid
end
local wait = -1
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #next_due > 0 then wait = math.max(0, tonumber(next_due[2]) - now_ms) end
return {wait, fresh, stale}
