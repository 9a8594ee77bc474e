-- KEYS: due set. ARGV: score for taken, status key prefix, then URNs. Takes each URN no
-- run has taken or answered yet (it builds status keys from the prefix: one Redis only).
local taken = {}
for i = 3, #ARGV do
  local urn = ARGV[i]
  if redis.call('EXISTS', ARGV[2] .. urn) == 0
      and redis.call('ZADD', KEYS[1], 'NX', ARGV[1], urn) == 1 then
    table.insert(taken, urn)
  end
end
return taken
