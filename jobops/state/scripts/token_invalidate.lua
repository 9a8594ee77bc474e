-- KEYS: token. ARGV: the token LinkedIn refused. Deletes it only if it is still current.
if redis.call('HGET', KEYS[1], 'access_token') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
