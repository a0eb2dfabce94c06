-- Adopts an assignment another producer announced on lead.assigned: records it and starts
-- its clock, unless this attempt (or a later one) is known. The previous attempt's rep and
-- queue were read by the caller to name their keys; if they changed, it reads again.
-- Named arguments: see lifecycle.rs (AdoptArgs).
-- KEYS: lead, log, rep_open, deadlines, claims, previous_rep_open, queue
local a = cjson.decode(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'touched_ms', 'queue', 'rep',
  'decision', 'had')
local state = f[1] or 'received'
if state ~= 'waiting' and tonumber(f[2] or '0') >= a.attempt then
  return {'known'}
end
if state == 'closed' then
  return {'known'}
end
if (f[4] or '') ~= a.queue or (f[5] or '') ~= a.previous_rep then
  return {'moved'}
end
if f[5] then
  -- A reassignment: the previous rep's capacity and clock go.
  local previous = a.lead_id .. '|' .. (f[2] or '0')
  redis.call('ZREM', KEYS[6], a.lead_id)
  redis.call('ZREM', KEYS[4], previous)
  redis.call('ZREM', KEYS[5], previous)
end
if state == 'waiting' then
  redis.call('ZREM', KEYS[7], a.lead_id)
  redis.call('ZREM', KEYS[4], a.wait_member)
  redis.call('ZREM', KEYS[5], a.wait_member)
  redis.call('HDEL', KEYS[1], 'lead')
end
local touched = f[3]
local new_state = 'assigned'
if touched then
  new_state = 'touched'
end
if a.joins ~= '' then
  -- A sticky repeat joining the contact's open lead: never counted in the rep's open
  -- leads (as assign.lua commits it; fix_open.lua reads this too).
  redis.call('HSET', KEYS[1], 'joins', a.joins)
elseif (not touched) or a.release == 'close' then
  redis.call('ZADD', KEYS[3], a.open_until_ms, a.lead_id)
end
if not touched then
  redis.call('ZADD', KEYS[4], a.due_ms, a.member)
end
local had = a.rep
if f[7] then
  had = f[7] .. ',' .. a.rep
end
redis.call('HSET', KEYS[1], 'assigned', a.event, 'team', a.team, 'rep', a.rep,
  'attempt', a.attempt, 'state', new_state, 'assigned_ms', a.assigned_ms, 'due_ms', a.due_ms,
  'had', had)
if not f[6] then
  redis.call('HSET', KEYS[1], 'decision', a.event, 'decision_kind', 'assigned')
end
redis.call('RPUSH', KEYS[2], a.entry)
redis.call('EXPIRE', KEYS[1], a.retention_seconds)
redis.call('EXPIRE', KEYS[2], a.retention_seconds)
return {'adopted', new_state}
