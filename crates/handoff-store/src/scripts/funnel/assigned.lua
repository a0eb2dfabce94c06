-- lead.assigned: the first assignment starts the feedback clock; the latest attempt's
-- deadline is watched until the first touch. KEYS: lead hash, awaiting feedback, touch due.
-- ARGV: lead id, attempt, team, assigned_ms, due_ms, received_ms, kind, campaign, ttl.
-- Returns {first assignment (1|0), qualified now (1|0), kind, campaign, settle()...}.
local lead, id, attempt = KEYS[1], ARGV[1], tonumber(ARGV[2])
redis.call('HSETNX', lead, 'kind', ARGV[7])
redis.call('HSETNX', lead, 'campaign', ARGV[8])
redis.call('HSETNX', lead, 'received_ms', ARGV[6])
local first = redis.call('HSETNX', lead, 'assigned_ms', ARGV[4])
local current = tonumber(redis.call('HGET', lead, 'attempt') or '0')
local latest = attempt >= current
if latest then
  redis.call('HSET', lead, 'attempt', ARGV[2], 'team', ARGV[3], 'due_ms', ARGV[5])
end
local touched = redis.call('HEXISTS', lead, 'touched_ms') == 1
if first == 1 and redis.call('HEXISTS', lead, 'feedback_ms') == 0 then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[4], id)
end
if latest and not touched then
  redis.call('ZADD', KEYS[3], ARGV[5], id)
end
local qualified = redis.call('HSETNX', lead, 'seen:qualified', 1)
redis.call('EXPIRE', lead, ARGV[9])
-- The sets live as long as their newest member could (and are trimmed to it as they go).
redis.call('EXPIRE', KEYS[2], ARGV[9])
redis.call('EXPIRE', KEYS[3], ARGV[9])
local v = redis.call('HMGET', lead, 'kind', 'campaign')
local result = {first, qualified, v[1] or '', v[2] or ''}
for _, x in ipairs(settle(lead)) do
  table.insert(result, x)
end
return result
