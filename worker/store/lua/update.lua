-- update.lua: change fields of an existing job without changing its state.
--
-- KEYS[1]  job hash      KEYS[2..] the schedules, in the order of worker.store.keys.SCHEDULES
-- ARGV[1]  the plan, JSON:
--   state      write only while the job is in this state ('' = in any state)
--   absent     write only while this field is absent ('' = no such condition)
--   fields     [k, v, ...] to set      delete  [k, ...] to remove
--   stamp      [k, ...] set to now      incr    a field to add 1 to ('' = none)
--   join       [[KEYS index, delay s, only-if-absent], ...] schedules to join
-- Returns {written (1/0), the incremented value or 0}. Never creates a record: a job that
-- expired stays gone. Every check and decode happens before the first write.
local plan = cjson.decode(ARGV[1])
assert(#plan.fields % 2 == 0, 'fields are k, v pairs')
for _, j in ipairs(plan.join) do
  assert(type(j[2]) == 'number' and j[2] == j[2], 'join delay must be a number')
end
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {0, 0} end
if plan.state ~= '' and state ~= plan.state then return {0, 0} end
if plan.absent ~= '' and redis.call('HEXISTS', KEYS[1], plan.absent) == 1 then return {0, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stamp = string.format('%.3f', now)
local job_id = redis.call('HGET', KEYS[1], 'job_id')

if #plan.fields > 0 then redis.call('HSET', KEYS[1], unpack(plan.fields)) end
if #plan.delete > 0 then redis.call('HDEL', KEYS[1], unpack(plan.delete)) end
for _, k in ipairs(plan.stamp) do redis.call('HSET', KEYS[1], k, stamp) end
for _, j in ipairs(plan.join) do
  local score = string.format('%.3f', now + j[2])
  if j[3] then redis.call('ZADD', KEYS[j[1]], 'NX', score, job_id)
  else redis.call('ZADD', KEYS[j[1]], score, job_id) end
end
local counted = 0
if plan.incr ~= '' then counted = redis.call('HINCRBY', KEYS[1], plan.incr, 1) end
return {1, counted}
