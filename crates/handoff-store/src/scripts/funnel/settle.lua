-- Shared by the assignment and touch scripts (prepended to each): once a lead has both an
-- assignment and a first touch, whichever event came second settles the first touch, once.
-- Returns {received_ms, touched_ms, team, verdict} or {} (verdict: met | missed | '' when
-- this attempt already has one, e.g. from its breach).
local function settle(lead)
  local v = redis.call('HMGET', lead, 'received_ms', 'assigned_ms', 'touched_ms', 'due_ms', 'team', 'attempt')
  if not v[2] or not v[3] then
    return {}
  end
  if redis.call('HSETNX', lead, 'seen:first_touch', 1) == 0 then
    return {}
  end
  local verdict = 'missed'
  if v[4] and tonumber(v[3]) <= tonumber(v[4]) then
    verdict = 'met'
  end
  if redis.call('HSETNX', lead, 'sla:' .. (v[6] or '0'), verdict) == 0 then
    verdict = ''
  end
  return {v[1] or '', v[3], v[5] or '', verdict}
end
