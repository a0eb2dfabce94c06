-- Completes claims whose events are published: each goes only if its owner is still the
-- caller's token. A claim whose lease ran out and that another poller took (or already
-- completed) is not the caller's to remove: that poller publishes it (same event id).
-- KEYS: claims (zset), owners (hash member -> token)
-- ARGV: token, member1, member2, ...
-- Returns: one integer per member: 1 completed, 0 no longer the caller's claim.
local done = {}
for i = 2, #ARGV do
  local member = ARGV[i]
  if redis.call('HGET', KEYS[2], member) == ARGV[1] then
    redis.call('ZREM', KEYS[1], member)
    redis.call('HDEL', KEYS[2], member)
    table.insert(done, 1)
  else
    table.insert(done, 0)
  end
end
return done
