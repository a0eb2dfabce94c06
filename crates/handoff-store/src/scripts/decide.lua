-- Records a decision that is not an assignment (nurture, or waiting in a queue), once.
-- Named arguments: see lifecycle.rs (DecideArgs).
-- KEYS: lead, log, queue, queues, deadlines
local a = cjson.decode(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'decision', 'decision_kind', 'state')
if f[1] then
  return {'existing', f[2] or '', f[1]}
end
if f[3] == 'closed' then
  return {'closed', '', ''}
end
redis.call('HSET', KEYS[1], 'decision', a.event, 'decision_kind', 'disposition',
  'state', a.state)
if a.state == 'waiting' then
  redis.call('HSET', KEYS[1], 'queue', a.queue, 'queued_ms', a.now_ms, 'lead', a.lead)
  if a.team ~= '' then
    redis.call('HSET', KEYS[1], 'team', a.team)
  end
  -- Ordered by arrival: the lead that came first is offered first.
  redis.call('ZADD', KEYS[3], a.received_ms, a.lead_id)
  redis.call('SADD', KEYS[4], a.queue)
  -- The wait counts against speed-to-lead: a clock from receipt, attempt 0.
  redis.call('ZADD', KEYS[5], a.wait_due_ms, a.wait_member)
  redis.call('HSET', KEYS[1], 'due_ms', a.wait_due_ms, 'attempt', 0)
end
if a.trace ~= '' then
  redis.call('HSET', KEYS[1], 'trace', a.trace)
end
redis.call('RPUSH', KEYS[2], a.entry)
redis.call('EXPIRE', KEYS[1], a.retention_seconds)
redis.call('EXPIRE', KEYS[2], a.retention_seconds)
return {'recorded', '', ''}
