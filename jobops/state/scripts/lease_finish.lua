-- KEYS: run key. ARGV: holder, the done value, its TTL in seconds. Marks the round done
-- only for the copy that holds it; returns 1 if it did.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
