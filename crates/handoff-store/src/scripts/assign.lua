-- Commits one assignment, atomically: capacity, daily cap, rotation, the lead's state, its
-- first-touch deadline, the timeline. Named arguments: see lifecycle.rs (AssignArgs).
-- KEYS: lead, log, rep_open, rotation, assigned_on, contact_owner, deadlines, claims, queue,
--       outbox, reminders
local a = cjson.decode(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'decision', 'decision_kind', 'state', 'touched_ms',
  'disposed_ms', 'disposition_due_ms')
local state = f[3]
if a.from_queue then
  -- Routed from a queue: only while it still waits there (another instance may have won).
  if state ~= 'waiting' or not redis.call('ZSCORE', KEYS[9], a.lead_id) then
    return {'gone', state or ''}
  end
elseif f[1] then
  -- Decided before (a redelivery): the first decision stands and is replayed.
  return {'existing', f[2] or '', f[1]}
end
if state == 'closed' then
  return {'closed', '', ''}
end
local rotation = redis.call('HGET', KEYS[4], a.team) or ''
if rotation ~= a.rotation_before then
  return {'conflict', 'rotation moved', ''}
end
-- Open leads whose records expired no longer hold capacity.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', a.now_ms)
-- A sticky repeat joins the contact's lead still open with this rep: it takes no
-- capacity and no daily-cap unit, so neither is checked; only while that lead is open.
local joins = a.joins ~= ''
if joins and not redis.call('ZSCORE', KEYS[3], a.joins) then
  return {'conflict', 'the lead a repeat joins is no longer open', ''}
end
if (not joins) and redis.call('ZCARD', KEYS[3]) >= a.capacity then
  return {'conflict', 'rep reached capacity', ''}
end
if (not joins) and a.daily_cap >= 0 then
  local today = tonumber(redis.call('HGET', KEYS[5], a.rep) or '0')
  if today >= a.daily_cap then
    return {'conflict', 'rep reached the daily cap', ''}
  end
end
-- A touch reported before the assignment (the rep called first) is seen now: no clock
-- starts, and the lead holds capacity only if capacity is released on close.
local touched = f[4]
local new_state = 'assigned'
if touched then
  new_state = 'touched'
end
if joins then
  -- Never counted in the rep's open leads (fix_open.lua reads this too).
  redis.call('HSET', KEYS[1], 'joins', a.joins)
elseif (not touched) or a.release == 'close' then
  redis.call('ZADD', KEYS[3], a.open_until_ms, a.lead_id)
end
if not touched then
  redis.call('ZADD', KEYS[7], a.due_ms, a.member)
end
if not joins then
  redis.call('HINCRBY', KEYS[5], a.rep, 1)
  redis.call('EXPIRE', KEYS[5], 172800)
end
redis.call('HSET', KEYS[4], a.team, a.rotation_after)
redis.call('HSET', KEYS[1], 'assigned', a.event, 'team', a.team, 'rep', a.rep,
  'attempt', a.attempt, 'state', new_state, 'assigned_ms', a.assigned_ms, 'due_ms', a.due_ms,
  'had', a.rep)
if not f[1] then
  redis.call('HSET', KEYS[1], 'decision', a.event, 'decision_kind', 'assigned')
end
if a.from_queue then
  redis.call('ZREM', KEYS[9], a.lead_id)
  redis.call('ZREM', KEYS[7], a.wait_member)
  redis.call('ZREM', KEYS[8], a.wait_member)
  redis.call('HDEL', KEYS[1], 'lead')
  -- No consumer offset guards this publish: the outbox does, until it is acknowledged.
  redis.call('ZADD', KEYS[10], a.now_ms, a.lead_id)
end
if a.sticky_seconds > 0 then
  -- `rep|lead`: the rep, and the contact's lead that holds their capacity (the one a
  -- repeat joins). receive.lua hands it back; a value without `|` is a rep alone.
  local holding = a.lead_id
  if joins then
    holding = a.joins
  end
  redis.call('SET', KEYS[6], a.rep .. '|' .. holding, 'EX', a.sticky_seconds)
end
if a.trace ~= '' then
  redis.call('HSET', KEYS[1], 'trace', a.trace)
end
-- The attempt's clocks, as schedule_clocks.lua would set them when the SLA tracker sees
-- the assignment: the marker tells the tracker there is nothing left to do.
redis.call('HSET', KEYS[1], a.marker, 1)
if new_state == 'assigned' then
  for _, r in ipairs(a.reminders) do
    redis.call('ZADD', KEYS[11], 'NX', r[2], r[1])
  end
end
if a.disposition_due_ms > 0 and not f[5] and not f[6] then
  redis.call('HSET', KEYS[1], 'disposition_due_ms', a.disposition_due_ms)
  redis.call('ZADD', KEYS[7], 'NX', a.disposition_due_ms, a.disposition_member)
  for _, r in ipairs(a.disposition_reminders) do
    redis.call('ZADD', KEYS[11], 'NX', r[2], r[1])
  end
end
redis.call('RPUSH', KEYS[2], a.entry)
redis.call('EXPIRE', KEYS[1], a.retention_seconds)
redis.call('EXPIRE', KEYS[2], a.retention_seconds)
return {'assigned', new_state, ''}
