-- A lead whose feedback window ended without feedback: marked once (`feedback_missed`),
-- so the scorecard counts it missed on that day and not again when feedback comes late.
-- KEYS: lead hash. Returns {} when there is nothing to mark (gone, given feedback, marked
-- before), else {kind, campaign, team, assigned_ms}.
local lead = KEYS[1]
if redis.call('EXISTS', lead) == 0 or redis.call('HEXISTS', lead, 'feedback_ms') == 1 then
  return {}
end
if redis.call('HSETNX', lead, 'feedback_missed', 1) == 0 then
  return {}
end
local v = redis.call('HMGET', lead, 'kind', 'campaign', 'team', 'assigned_ms')
return {v[1] or '', v[2] or '', v[3] or '', v[4] or ''}
