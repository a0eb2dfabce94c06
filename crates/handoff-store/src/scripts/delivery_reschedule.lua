-- Puts a claimed delivery back in the delayed set, with its updated record, if the caller
-- still owns the claim (a claim whose lease ran out belongs to whoever took it over).
-- KEYS: pending (hash), due (zset), claimed (zset), owners (hash)
-- ARGV: id, token, delay_ms, record
-- Returns 1 if rescheduled, 0 if the claim is no longer the caller's.
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then
  return 0
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1
