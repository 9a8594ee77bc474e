-- The Redis server's clock, in milliseconds: one clock for every host of the fleet.
local function redis_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The same, moved by the offset stored at ``offset_key`` when ``allowed`` is '1' (tests
-- that move the fleet's clock; see JOBOPS_ALLOW_CLOCK_OVERRIDE).
local function fleet_now_ms(offset_key, allowed)
  local now = redis_now_ms()
  if allowed == '1' then now = now + tonumber(redis.call('GET', offset_key) or '0') end
  return now
end
