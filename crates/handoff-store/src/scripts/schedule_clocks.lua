-- Schedules an assignment's reminders (and, when the disposition clock starts at the
-- assignment, its disposition deadline) once per attempt, if the lead is still in that
-- attempt and waiting for what they ask. Idempotent: a redelivered assignment schedules
-- nothing twice, not even a reminder already sent.
-- Named arguments: see clocks.rs (ScheduleArgs).
-- KEYS: lead, deadlines, reminders
local a = cjson.decode(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'disposed_ms', 'disposition_due_ms')
if not f[1] then
  return 'unknown'
end
if (f[2] or '') ~= a.attempt then
  return 'moved'
end
local state = f[1]
local scheduled = 'none'
if state == 'assigned' and redis.call('HSETNX', KEYS[1], a.marker, 1) == 1 then
  for _, r in ipairs(a.reminders) do
    redis.call('ZADD', KEYS[3], 'NX', r[2], r[1])
  end
  scheduled = 'reminders'
end
if a.disposition_due_ms > 0 and (state == 'assigned' or state == 'touched')
    and not f[3] and not f[4] then
  redis.call('HSET', KEYS[1], 'disposition_due_ms', a.disposition_due_ms)
  redis.call('ZADD', KEYS[2], 'NX', a.disposition_due_ms, a.disposition_member)
  for _, r in ipairs(a.disposition_reminders) do
    redis.call('ZADD', KEYS[3], 'NX', r[2], r[1])
  end
  scheduled = 'disposition'
end
return scheduled
