-- A rep touched the lead: stop the clock of its current attempt and free one unit of the
-- rep's capacity, once. Returns {rep, team, assigned_ms} or {} when there was nothing to stop.
-- KEYS: lead, open_leads, deadlines, claims
-- ARGV: lead_id, touched_ms
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'awaiting' then
  return {}
end
local fields = redis.call('HMGET', KEYS[1], 'rep', 'team', 'attempt', 'assigned_ms')
redis.call('HSET', KEYS[1], 'state', 'touched', 'touched_ms', ARGV[2])
redis.call('HINCRBY', KEYS[2], fields[1], -1)
local member = ARGV[1] .. '|' .. fields[3]
redis.call('ZREM', KEYS[3], member)
redis.call('ZREM', KEYS[4], member)
return {fields[1], fields[2], fields[4]}
