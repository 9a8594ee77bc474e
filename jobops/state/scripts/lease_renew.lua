-- KEYS: run keys. ARGV: lease ms, then one holder per key. Extends each lease its holder
-- still has; takes back one that ran out with nobody else on it (its process stalled, no
-- copy took over); returns the 1-based indexes of the leases another copy holds or
-- finished.
local lost = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  if value == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
  elseif not value then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
  else
    table.insert(lost, i)
  end
end
return lost
