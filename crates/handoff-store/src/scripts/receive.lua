-- Records a lead's arrival once (ingest and the router both call this; whichever comes
-- first wins, and they agree), and reads the rep who works the contact (sticky routing).
-- KEYS: lead, log, contact_owner (or the lead key when there is none)
-- ARGV: source_json, received_ms, retention_seconds, entry_json, read_owner (1/0)
if redis.call('HSETNX', KEYS[1], 'source', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'received_ms', ARGV[2])
  redis.call('RPUSH', KEYS[2], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
if ARGV[5] == '1' then
  return redis.call('GET', KEYS[3])
end
return false
