-- Applies a reported outcome (touch or close) once per event id. The caller read the
-- lead's rep and queue to name their keys; if they changed since, it reads again.
-- Named arguments: see lifecycle.rs (ReportArgs).
-- The disposition clock: a disposition (accepted, converted, rejected, recycled) stops it
-- for good; the first touch of an assigned lead starts it when the caller says when it is
-- due (disposition_due_ms > 0), with its reminders.
-- KEYS: lead, log, rep_open, deadlines, claims, queue, reminders
local a = cjson.decode(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'unknown', ''}
end
local marker = 'd:' .. a.event_id
if redis.call('HEXISTS', KEYS[1], marker) == 1 then
  return {'duplicate', ''}
end
local f = redis.call('HMGET', KEYS[1], 'state', 'rep', 'queue', 'attempt', 'touched_ms',
  'assigned_ms', 'team')
local state = f[1] or 'received'
if (f[2] or '') ~= a.rep or (f[3] or '') ~= a.queue or (f[4] or '') ~= a.attempt then
  return {'moved', state}
end
if state == 'closed' then
  return {'refused', state}
end
local member = a.lead_id .. '|' .. (f[4] or '0')
-- The first-touch deadline goes with a touch (or close) made in time. One made after it
-- stays, so the SLA tracker still fires the breach the lead earned: a tracker that was down
-- or behind must not let a late touch erase a miss. The router then leaves the touched
-- lead with its rep (escalate.lua: a touch that came first wins).
local function forget_first_touch()
  local due = redis.call('ZSCORE', KEYS[4], member)
  if due and tonumber(a.at_ms) > tonumber(due) then
    return
  end
  redis.call('ZREM', KEYS[4], member)
  redis.call('ZREM', KEYS[5], member)
end
local first = not f[5]
if first then
  redis.call('HSET', KEYS[1], 'touched_ms', a.at_ms)
end
local disposed = redis.call('HEXISTS', KEYS[1], 'disposed_ms') == 1
if a.disposes then
  if not disposed then
    redis.call('HSET', KEYS[1], 'disposed_ms', a.at_ms)
  end
  redis.call('ZREM', KEYS[4], a.disposition_member)
  redis.call('ZREM', KEYS[5], a.disposition_member)
elseif first and a.transition == 'touch' and state == 'assigned' and not disposed
    and a.disposition_due_ms > 0
    and redis.call('HEXISTS', KEYS[1], 'disposition_due_ms') == 0 then
  redis.call('HSET', KEYS[1], 'disposition_due_ms', a.disposition_due_ms)
  redis.call('ZADD', KEYS[4], 'NX', a.disposition_due_ms, a.disposition_member)
  for _, r in ipairs(a.disposition_reminders) do
    redis.call('ZADD', KEYS[7], 'NX', r[2], r[1])
  end
end
if a.transition == 'touch' then
  if state == 'assigned' then
    redis.call('HSET', KEYS[1], 'state', 'touched')
    forget_first_touch()
    if a.release == 'first_touch' then
      redis.call('ZREM', KEYS[3], a.lead_id)
    end
  end
  -- Otherwise (not assigned yet) the touch is recorded; the assignment will see it.
else
  redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_ms', a.at_ms, 'outcome', a.outcome)
  redis.call('ZREM', KEYS[3], a.lead_id)
  forget_first_touch()
  if state == 'waiting' then
    redis.call('ZREM', KEYS[6], a.lead_id)
  end
end
redis.call('HSET', KEYS[1], marker, 1)
redis.call('RPUSH', KEYS[2], a.entry)
if a.transition == 'close' then
  redis.call('EXPIRE', KEYS[1], a.closed_retention_seconds)
  redis.call('EXPIRE', KEYS[2], a.closed_retention_seconds)
end
local was_first = '0'
if first then
  was_first = '1'
end
return {'applied', state, was_first, f[6] or '', f[7] or '', f[2] or ''}
