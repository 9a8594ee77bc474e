-- KEYS: dead-letter list. ARGV: the letter's JSON, how many letters to keep.
-- Adds the letter newest first, stamped with the Redis server's clock (seconds), and
-- trims the list; returns its length.
-- uses: now_ms
local entry = cjson.decode(ARGV[1])
entry['at'] = redis_now_ms() / 1000
redis.call('LPUSH', KEYS[1], cjson.encode(entry))
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return redis.call('LLEN', KEYS[1])
