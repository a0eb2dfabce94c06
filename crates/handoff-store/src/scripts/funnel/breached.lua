-- sla.breached: once per (lead, SLA, attempt); a first-touch breach is that attempt's
-- verdict (missed) unless a touch settled it first. KEYS: lead hash.
-- ARGV: sla, attempt, ttl. Returns {new (1|0), verdict now (1|0), kind, campaign}.
local lead = KEYS[1]
local new = redis.call('HSETNX', lead, 'breach:' .. ARGV[1] .. ':' .. ARGV[2], 1)
local verdict = 0
if ARGV[1] == 'first_touch' then
  verdict = redis.call('HSETNX', lead, 'sla:' .. ARGV[2], 'missed')
end
redis.call('EXPIRE', lead, ARGV[3])
local v = redis.call('HMGET', lead, 'kind', 'campaign')
return {new, verdict, v[1] or '', v[2] or ''}
