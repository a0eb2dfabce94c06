-- lead.disposition: each outcome counts once per lead; the first outcome marketing can use
-- (ARGV[4] = 1) stops the feedback clock. KEYS: lead hash, awaiting feedback.
-- ARGV: lead id, outcome, occurred_ms, feedback (1|0), kind, campaign, ttl, also mark
-- (a stage this outcome implies, e.g. qualified for overflowed; '' for none).
-- Returns {new (1|0), kind, campaign, first feedback (1|0), assigned_ms or '', also new (1|0),
-- feedback already counted missed (1|0: its window ended first, see feedback_overdue.lua)}.
local lead = KEYS[1]
redis.call('HSETNX', lead, 'kind', ARGV[5])
redis.call('HSETNX', lead, 'campaign', ARGV[6])
local new = redis.call('HSETNX', lead, 'seen:' .. ARGV[2], 1)
local feedback = 0
if ARGV[4] == '1' then
  feedback = redis.call('HSETNX', lead, 'feedback_ms', ARGV[3])
  if feedback == 1 then
    redis.call('ZREM', KEYS[2], ARGV[1])
  end
end
local also = 0
if ARGV[8] ~= '' then
  also = redis.call('HSETNX', lead, 'seen:' .. ARGV[8], 1)
end
redis.call('EXPIRE', lead, ARGV[7])
local v = redis.call('HMGET', lead, 'kind', 'campaign', 'assigned_ms')
local missed = redis.call('HEXISTS', lead, 'feedback_missed')
return {new, v[1] or '', v[2] or '', feedback, v[3] or '', also, missed}
