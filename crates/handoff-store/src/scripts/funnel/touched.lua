-- A first touch (any outcome a rep or CRM reports). KEYS: lead hash, touch due.
-- ARGV: lead id, touched_ms, ttl. Returns settle()'s answer.
local lead = KEYS[1]
redis.call('HSETNX', lead, 'touched_ms', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', lead, ARGV[3])
return settle(lead)
