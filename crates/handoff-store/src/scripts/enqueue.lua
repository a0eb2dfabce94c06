-- Puts a lead nobody can take into an overflow queue, once.
-- KEYS: lead, queue
-- ARGV: lead_id, queue_name, retention_seconds
local assigned = redis.call('HGET', KEYS[1], 'assigned')
if assigned then
  return {'assigned', assigned}
end
local queued = redis.call('HGET', KEYS[1], 'queued')
if queued then
  return {'queued', queued}
end
redis.call('HSET', KEYS[1], 'queued', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[1])
return {'queued', ARGV[2]}
