-- The routing step, atomically: dedup, capacity, daily cap, rotation, assignment, deadline.
-- KEYS: lead, open_leads, rotation, deadlines, assigned_today, contact_owner
-- ARGV: team, rep, expected_rotation, capacity, due_ms, deadline_member,
--       assigned_event_json, retention_seconds, attempt, assigned_ms, new_rotation,
--       daily_cap (-1: none), sticky_seconds (0: off)
local existing = redis.call('HGET', KEYS[1], 'assigned')
if existing then
  return {'existing', existing}
end
local rotation = redis.call('HGET', KEYS[3], ARGV[1]) or ''
if rotation ~= ARGV[3] then
  return {'conflict', 'rotation moved'}
end
local open = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if open >= tonumber(ARGV[4]) then
  return {'conflict', 'rep reached capacity'}
end
local daily_cap = tonumber(ARGV[12])
if daily_cap >= 0 then
  local today = tonumber(redis.call('HGET', KEYS[5], ARGV[2]) or '0')
  if today >= daily_cap then
    return {'conflict', 'rep reached the daily cap'}
  end
end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HINCRBY', KEYS[5], ARGV[2], 1)
redis.call('EXPIRE', KEYS[5], 172800)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[11])
redis.call('HSET', KEYS[1], 'assigned', ARGV[7], 'team', ARGV[1], 'rep', ARGV[2],
  'attempt', ARGV[9], 'state', 'awaiting', 'assigned_ms', ARGV[10], 'due_ms', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
if tonumber(ARGV[13]) > 0 then
  redis.call('SET', KEYS[6], ARGV[2], 'EX', ARGV[13])
end
return {'assigned', ARGV[7]}
