-- KEYS: clock offset, blocked_until, breaker. ARGV: allow offset, reason, first step ms,
-- step cap ms, jitter (0-1), fixed step ms (-1: doubling, -2: the daily limit), message,
-- daily re-check ms, midnight spread ms.
-- A trip while the fleet is already paused (not merely holding for a probe) adds no step.
-- Returns {pause ms left, 1 if this trip opened a new step, step number}.
-- uses: now_ms
local now = fleet_now_ms(KEYS[1], ARGV[1])
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
local probing = tonumber(redis.call('HGET', KEYS[3], 'probe_until') or '-1')
local level = 0
if redis.call('HGET', KEYS[3], 'reason') == ARGV[2] then
  level = tonumber(redis.call('HGET', KEYS[3], 'level') or '0')
end
if now < blocked and blocked ~= probing then return {blocked - now, 0, level} end
local step = tonumber(ARGV[6])
if step == -2 then
  local midnight = (math.floor(now / 86400000) + 1) * 86400000
  step = math.min(tonumber(ARGV[8]), midnight - now + tonumber(ARGV[9]) * tonumber(ARGV[5]))
elseif step < 0 then
  step = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ math.min(level, 40))
  step = step / 2 + step / 2 * tonumber(ARGV[5])
end
step = math.max(1, math.floor(step))
local untill = now + step
redis.call('SET', KEYS[2], untill, 'PX', step + 1000)
redis.call('HSETNX', KEYS[3], 'since', now)
redis.call('HSET', KEYS[3], 'reason', ARGV[2], 'level', level + 1, 'until', untill,
           'message', ARGV[7])
redis.call('HDEL', KEYS[3], 'probe', 'probe_until')
redis.call('PEXPIRE', KEYS[3], step + 4 * tonumber(ARGV[4]) + 86400000)
return {step, 1, level + 1}
