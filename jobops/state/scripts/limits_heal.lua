-- KEYS: blocked_until, breaker. ARGV: holder id. LinkedIn answered the probe: calls
-- resume for everyone. Returns the reason the breaker had been open for, or false.
if redis.call('HGET', KEYS[2], 'probe') ~= ARGV[1] then return false end
local reason = redis.call('HGET', KEYS[2], 'reason')
if redis.call('GET', KEYS[1]) == redis.call('HGET', KEYS[2], 'probe_until') then
  redis.call('DEL', KEYS[1])
end
redis.call('DEL', KEYS[2])
return reason
