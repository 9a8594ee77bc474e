-- Moves every outcome of the open batch ``list`` into a new sealed batch of ``bid``;
-- returns its sealed id. The counter starts at the clock (HSETNX on append), so ids stay
-- unique even after the hash expired. The open batch's bytes (field ``bytes`` of the
-- batch hash) start again from 0.
local function seal(bid, meta, list, sealed, sealed_at, now_ms)
  local items = redis.call('LRANGE', list, 0, -1)
  redis.call('DEL', list)
  redis.call('HDEL', meta, 'bytes')
  local sid = bid .. ':' .. redis.call('HINCRBY', meta, 'seq', 1)
  local signature = redis.call('HGET', meta, 'signature')
  redis.call('HSET', sealed, sid,
             '{"signature":' .. signature .. ',"outcomes":[' .. table.concat(items, ',') .. ']}')
  redis.call('ZADD', sealed_at, now_ms, sid)
  return sid
end
