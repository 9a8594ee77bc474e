-- KEYS: due set. ARGV: now, horizon, how many. Takes the soonest-due URNs and moves them
-- past the horizon, so a concurrent run does not take them too.
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, urn in ipairs(found) do
  redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[2]) + 1, urn)
end
return found
