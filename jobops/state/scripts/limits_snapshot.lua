-- KEYS: clock offset, blocked_until, window, breaker. ARGV: allow offset, window ms, quota
-- prefix.
-- uses: now_ms
local now = fleet_now_ms(KEYS[1], ARGV[1])
local window = tonumber(ARGV[2])
local in_window = redis.call('ZCOUNT', KEYS[3], now - window, '+inf')
local day = math.floor(now / 86400000)
local used = tonumber(redis.call('GET', ARGV[3] .. day) or '0')
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
local breaker = redis.call('HGETALL', KEYS[4])
return {now, in_window, used, blocked, breaker}
