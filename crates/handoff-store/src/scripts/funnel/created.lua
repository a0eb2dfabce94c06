-- lead.created: the lead's attribution (first one wins) and, once per lead, its campaign's
-- lead count (the busiest campaigns keep their name as a label; the set keeps the top ARGV[5]).
-- KEYS: lead hash, campaign counts. ARGV: kind, campaign, received_ms, ttl, max campaigns.
-- Returns {new (1|0), kind, campaign} as first recorded.
local lead = KEYS[1]
local new = redis.call('HSETNX', lead, 'seen:received', 1)
redis.call('HSETNX', lead, 'kind', ARGV[1])
redis.call('HSETNX', lead, 'campaign', ARGV[2])
redis.call('HSETNX', lead, 'received_ms', ARGV[3])
redis.call('EXPIRE', lead, ARGV[4])
if new == 1 and ARGV[2] ~= '' then
  redis.call('ZINCRBY', KEYS[2], 1, ARGV[2])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
  -- Counts of a deployment that stopped receiving leads go with its lead records.
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
local v = redis.call('HMGET', lead, 'kind', 'campaign')
return {new, v[1] or '', v[2] or ''}
