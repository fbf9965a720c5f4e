-- release.lua: delete a lock only if it still holds our token.
--
-- KEYS[1]  the lock     ARGV[1]  our token
-- Returns 1 when released, 0 when the lock had expired or was someone else's.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
