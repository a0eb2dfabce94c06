-- Ends a delivery: delivered (then the marker is set, so a redelivered event is not sent
-- again within the window) or given up (dead-lettered). The marker is set even when the
-- claim has passed to another owner: the message did arrive. The record goes only with
-- the owner's token.
-- KEYS: sent marker, pending (hash), due (zset), claimed (zset), owners (hash)
-- ARGV: id, token, delivered (1|0), marker_ttl_seconds
-- Returns 1 if the record was removed, 0 if the claim is no longer the caller's.
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], '1', 'EX', ARGV[4])
end
if redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
return 1
