-- Admits a webhook delivery once: unless it was already delivered (the marker) or is
-- already pending (a redelivered event whose retry is scheduled or in flight), stores
-- the delivery and either claims it for an attempt now or schedules it for later.
-- Times come from the Redis clock, so every notifier instance agrees on due and lease.
-- KEYS: sent marker, pending (hash), due (zset), claimed (zset), owners (hash)
-- ARGV: id, record, mode ('claim'|'defer'), delay_ms (lease for claim, delay for defer), token
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'sent'
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return 'pending'
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] == 'claim' then
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[4]), ARGV[1])
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[5])
  return 'claimed'
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
return 'deferred'
