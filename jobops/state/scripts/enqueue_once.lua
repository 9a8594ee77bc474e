-- KEYS: queue list, marker. ARGV: message, marker TTL in ms.
-- Queues a callback once: the marker and the message together, or neither; returns 1 if
-- it queued the message.
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then
  redis.call('LPUSH', KEYS[1], ARGV[1])
  return 1
end
return 0
