-- ungrant.lua: an admitted job that may not go after all (a pause, the breaker) gives its
-- grant and its in-flight slot back and returns to its place in its line.
--
-- KEYS[1] job hash   KEYS[2] line   KEYS[3] counts   KEYS[4] grants   KEYS[5] in-flight
-- Returns 1 when the grant was given back, 0 when the job had none (or is not queued).
local job_id = redis.call('HGET', KEYS[1], 'job_id')
if not job_id or redis.call('HGET', KEYS[1], 'state') ~= 'queued'
   or redis.call('HEXISTS', KEYS[4], job_id) == 0 then
  return 0
end
local producer = redis.call('HGET', KEYS[1], 'producer') or 'default'
redis.call('HDEL', KEYS[4], job_id)
redis.call('HINCRBY', KEYS[3], 'pend:' .. producer, -1)
if redis.call('ZREM', KEYS[5], job_id) == 1 then
  redis.call('HINCRBY', KEYS[3], 'busy:' .. producer, -1)
end
local member = redis.call('HGET', KEYS[1], 'line')
if member then redis.call('ZADD', KEYS[2], 0, member) end
return 1
