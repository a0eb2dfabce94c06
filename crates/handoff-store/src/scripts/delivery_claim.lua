-- Claims due deliveries (and claims whose lease ran out: their notifier died mid-attempt)
-- with a new lease and owner token, and returns them with their records. A claim whose
-- record is gone (finished by its owner meanwhile) is dropped.
-- KEYS: pending (hash), due (zset), claimed (zset), owners (hash)
-- ARGV: lease_ms, limit, token
-- Returns: { id1, record1, id2, record2, ... }
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease_until = now + tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local claimed = {}
local function claim(id)
  local record = redis.call('HGET', KEYS[1], id)
  if record then
    redis.call('ZADD', KEYS[3], lease_until, id)
    redis.call('HSET', KEYS[4], id, ARGV[3])
    table.insert(claimed, id)
    table.insert(claimed, record)
  else
    redis.call('ZREM', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
  end
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  claim(id)
end
local room = limit - #expired
if room > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, room)
  for _, id in ipairs(due) do
    redis.call('ZREM', KEYS[2], id)
    claim(id)
  end
end
return claimed
