-- An account.owner record: the owner of one domain, unless the stored owner changed later
-- (a replayed or late record must not undo a newer change; the same time again applies, so
-- the later of two records in the log wins). Returns 1 when applied, 0 when stale.
-- KEYS: account
-- ARGV: updated_ms, owner (AccountOwner JSON)
local stored = redis.call('HGET', KEYS[1], 'updated_ms')
if stored and tonumber(stored) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'updated_ms', ARGV[1], 'owner', ARGV[2])
return 1
