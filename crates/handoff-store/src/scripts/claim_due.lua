-- Claims due deadlines (and claims whose lease ran out: their poller died) by moving
-- them to the claims set with a new lease. The caller emits the breach, then completes.
-- KEYS: deadlines, claims
-- ARGV: now_ms, lease_until_ms, limit
local claimed = {}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, member in ipairs(expired) do
  redis.call('ZADD', KEYS[2], ARGV[2], member)
  table.insert(claimed, member)
end
local room = tonumber(ARGV[3]) - #claimed
if room > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, room)
  for _, member in ipairs(due) do
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZADD', KEYS[2], ARGV[2], member)
    table.insert(claimed, member)
  end
end
return claimed
