-- Claims due entries (and claims whose lease ran out: their poller died or stalled) by
-- moving them to the claims set with a new lease, owned by this round's token. Due and
-- lease are reckoned on the Redis server's clock, so pollers on hosts whose clocks
-- disagree neither fire a deadline early or late nor take a live claim. The caller
-- publishes, then completes with its token (complete_claims.lua).
-- KEYS: due (zset), claims (zset), owners (hash member -> token)
-- ARGV: lease_ms, limit, token
-- Returns: { now_ms, member1, member2, ... } (now_ms as a string: the server's time)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease_until = now + tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local claimed = { tostring(now) }
-- Owner entries of claims the lifecycle removed while their poller was dead have nothing
-- to complete them: with no claim outstanding, every entry left is one of those.
if redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[3])
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, member in ipairs(expired) do
  redis.call('ZADD', KEYS[2], lease_until, member)
  redis.call('HSET', KEYS[3], member, ARGV[3])
  table.insert(claimed, member)
end
local room = limit - #expired
if room > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, room)
  for _, member in ipairs(due) do
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZADD', KEYS[2], lease_until, member)
    redis.call('HSET', KEYS[3], member, ARGV[3])
    table.insert(claimed, member)
  end
end
return claimed
