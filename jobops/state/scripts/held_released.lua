-- KEYS: held set, pending set. ARGV: the taker's deadline, when a released round is
-- overdue, then verification ids.
-- Moves each released verification from the held set to the pending set, if still taken
-- by this release: one forgotten meanwhile (settled, or already run through) stays gone,
-- and one whose round was registered anew (retried) keeps that registration.
local moved = 0
for i = 3, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[i])
    moved = moved + 1
  end
end
return moved
