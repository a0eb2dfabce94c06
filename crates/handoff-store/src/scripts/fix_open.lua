-- Puts one lead's membership in one rep's open set in line with the lead's state:
-- it belongs there exactly while it is that rep's and open (and not a repeat that joined
-- another lead of the same contact).
-- KEYS: lead, rep_open
-- ARGV: lead_id, rep, release ('first_touch' | 'close'), open_until_ms
local f = redis.call('HMGET', KEYS[1], 'state', 'rep', 'joins')
-- A sticky repeat that joined an open lead (assign.lua sets `joins`) never holds capacity.
local holds = f[2] == ARGV[2] and (not f[3])
  and (f[1] == 'assigned' or (f[1] == 'touched' and ARGV[3] == 'close'))
local member = redis.call('ZSCORE', KEYS[2], ARGV[1])
if holds and not member then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  return 1
end
if member and not holds then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return -1
end
return 0
