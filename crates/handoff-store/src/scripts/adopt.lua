-- Adopts an assignment made outside this router (another producer of lead.assigned):
-- records it and schedules its deadline unless this attempt, or a later one, is known.
-- KEYS: lead, open_leads, deadlines
-- ARGV: team, rep, attempt, due_ms, deadline_member, assigned_ms, retention_seconds
local known = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0')
if known >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], 'team', ARGV[1], 'rep', ARGV[2], 'attempt', ARGV[3],
  'state', 'awaiting', 'assigned_ms', ARGV[6], 'due_ms', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
return 1
