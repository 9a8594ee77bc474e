-- KEYS: blocked_until, breaker. ARGV: holder id. The probe's call failed in a way that
-- says nothing about the pause (a timeout, a 5xx): the next caller probes, now.
if redis.call('HGET', KEYS[2], 'probe') ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[1]) == redis.call('HGET', KEYS[2], 'probe_until') then
  redis.call('DEL', KEYS[1])
end
redis.call('HDEL', KEYS[2], 'probe', 'probe_until')
return 1
