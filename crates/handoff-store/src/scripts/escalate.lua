-- Acts on a missed first touch of attempt n, once: reassigns the lead (to another rep of
-- its team, or to the escalation team) as attempt n + 1, or, when nobody can take it,
-- records the escalation and leaves the lead with its rep. Named arguments: see
-- lifecycle.rs (EscalateArgs).
-- KEYS: lead, log, old_rep_open, new_rep_open, rotation, assigned_on, deadlines, claims
local a = cjson.decode(ARGV[1])
local marker = 'x:' .. a.attempt
local f = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'rep', marker, 'had')
if f[4] then
  return {'existing', f[4]}
end
-- A touch (or close) that came first wins; so does a later attempt.
if f[1] ~= 'assigned' or tonumber(f[2] or '0') ~= a.attempt or (f[3] or '') ~= a.old_rep then
  return {'stale', f[1] or ''}
end
if a.rep ~= '' then
  local rotation = redis.call('HGET', KEYS[5], a.team) or ''
  if rotation ~= a.rotation_before then
    return {'conflict', 'rotation moved'}
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', a.now_ms)
  if redis.call('ZCARD', KEYS[4]) >= a.capacity then
    return {'conflict', 'rep reached capacity'}
  end
  if a.daily_cap >= 0 then
    local today = tonumber(redis.call('HGET', KEYS[6], a.rep) or '0')
    if today >= a.daily_cap then
      return {'conflict', 'rep reached the daily cap'}
    end
  end
  -- The old rep's capacity and clock go; the new attempt's clock starts.
  redis.call('ZREM', KEYS[3], a.lead_id)
  redis.call('ZREM', KEYS[7], a.old_member)
  redis.call('ZADD', KEYS[4], a.open_until_ms, a.lead_id)
  redis.call('ZADD', KEYS[7], a.due_ms, a.new_member)
  redis.call('HINCRBY', KEYS[6], a.rep, 1)
  redis.call('EXPIRE', KEYS[6], 172800)
  redis.call('HSET', KEYS[5], a.team, a.rotation_after)
  -- With the new rep it holds capacity: no longer a repeat riding on another lead.
  redis.call('HDEL', KEYS[1], 'joins')
  local had = f[5] or a.old_rep
  redis.call('HSET', KEYS[1], 'assigned', a.event, 'team', a.team, 'rep', a.rep,
    'attempt', a.new_attempt, 'state', 'assigned', 'assigned_ms', a.assigned_ms,
    'due_ms', a.due_ms, 'a:' .. a.new_attempt, a.event, 'had', had .. ',' .. a.rep)
  if a.trace ~= '' then
    redis.call('HSET', KEYS[1], 'trace', a.trace)
  end
end
redis.call('HSET', KEYS[1], marker, a.disposition)
redis.call('RPUSH', KEYS[2], a.entry)
redis.call('EXPIRE', KEYS[1], a.retention_seconds)
redis.call('EXPIRE', KEYS[2], a.retention_seconds)
return {'done', ''}
