-- KEYS: clock offset, blocked_until, window, breaker. ARGV: allow offset, rate, window ms,
-- daily allowance, quota key prefix, permit id, holder id, probe hold ms.
-- Returns {granted (1/0), reason ('ok', 'probe', 'blocked', 'quota', 'rate'), wait ms,
-- now ms, quota used}.
-- uses: now_ms
local now = fleet_now_ms(KEYS[1], ARGV[1])
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
local granted = 'ok'
local elect = false
if now < blocked then
  -- The probe may call again within its hold (once more, with a fresh token).
  if redis.call('HGET', KEYS[4], 'probe') ~= ARGV[7] then
    return {0, 'blocked', blocked - now, now, 0}
  end
  granted = 'probe'
elseif redis.call('EXISTS', KEYS[4]) == 1 then
  elect = true
end
local day = math.floor(now / 86400000)
local qkey = ARGV[5] .. day
local used = tonumber(redis.call('GET', qkey) or '0')
if used >= tonumber(ARGV[4]) then
  return {0, 'quota', (day + 1) * 86400000 - now, now, used}
end
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  return {0, 'rate', tonumber(oldest[2]) + window - now + 1, now, used}
end
if elect then
  -- Only a caller that will call: one turned away by the quota or rate would hold the
  -- fleet for nothing.
  local hold = now + tonumber(ARGV[8])
  redis.call('SET', KEYS[2], hold, 'PX', tonumber(ARGV[8]) + 1000)
  redis.call('HSET', KEYS[4], 'probe', ARGV[7], 'probe_until', hold)
  granted = 'probe'
end
redis.call('ZADD', KEYS[3], now, ARGV[6])
redis.call('PEXPIRE', KEYS[3], window * 2)
used = redis.call('INCR', qkey)
if used == 1 then redis.call('PEXPIRE', qkey, 2 * 86400000) end
return {1, granted, 0, now, used}
