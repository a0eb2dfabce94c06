-- Puts back the first-touch deadline of an assigned, untouched lead whose deadline entry
-- is gone (a failover that lost the write), if the deadline is still ahead: one that has
-- passed may have fired already, and a rebuild from the log settles it.
-- KEYS: lead, deadlines, claims
-- ARGV: lead_id, now_ms
local f = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'due_ms', 'touched_ms')
if f[1] ~= 'assigned' or not f[2] or not f[3] or f[4] then
  return 0
end
if redis.call('HEXISTS', KEYS[1], 'x:' .. f[2]) == 1 then
  return 0
end
local member = ARGV[1] .. '|' .. f[2]
if redis.call('ZSCORE', KEYS[2], member) or redis.call('ZSCORE', KEYS[3], member) then
  return 0
end
if tonumber(f[3]) <= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[2], f[3], member)
return 1
