-- KEYS: pending set. ARGV: now, the next overdue time, then verification ids.
-- Pushes each id still overdue to the next overdue time (one re-registered meanwhile, or
-- forgotten, is left alone); returns those pushed.
local pushed = {}
for i = 3, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
    pushed[#pushed + 1] = ARGV[i]
  end
end
return pushed
