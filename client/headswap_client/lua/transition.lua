-- transition.lua: move one job to a new state, all or nothing.
--
-- KEYS[1]  job hash              KEYS[2]  event stream        KEYS[3]  remote id -> job id hash
-- KEYS[4]  nonce key (a delivery id; used only when plan.nonce_ttl > 0)
-- KEYS[5..] the schedules (sorted sets), in the order of worker.store.keys.SCHEDULES
-- ARGV[1]  the plan, JSON (built by JobStore.transition from worker.states' data):
--   target     state to enter              allowed    states it may be entered from
--   fields     [k, v, k, v, ...] to set     delete     [k, ...] to remove
--   stamp_once [k, ...] set to now unless present
--   leave      [schedule KEYS index, ...]  join       [[KEYS index, delay s, only-if-absent], ...]
--   cap        max jobs in the in-flight schedule when entering 'submitting' (0 = none)
--   inflight   KEYS index of the in-flight schedule
--   index_remote  true: index the job by its remote_id; false: drop it from the index
--   ttl        seconds the record lives on (0 = no expiry)
--   event      [k, v, ...] extra event fields      maxlen   approximate stream cap
--   nonce_ttl  > 0: refuse if KEYS[4] exists, else set it with this TTL (webhook replay)
-- Returns {status, previous state, now}: status ok | missing | refused | capped | replay.
--
-- Every check and every decode happens before the first write: Redis does not roll a
-- script back, so a script that fails half-way would leave a half-applied transition.
local plan = cjson.decode(ARGV[1])
local target = plan.target
assert(type(target) == 'string', 'plan.target must be a string')
for _, j in ipairs(plan.join) do
  assert(type(j[2]) == 'number' and j[2] == j[2], 'join delay must be a number')
end
assert(type(plan.ttl) == 'number' and type(plan.cap) == 'number', 'ttl and cap are numbers')
assert(#plan.fields % 2 == 0 and #plan.event % 2 == 0, 'fields and event are k, v pairs')

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stamp = string.format('%.3f', now)

local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'missing', '', stamp} end
local ok = false
for _, s in ipairs(plan.allowed) do if s == current then ok = true end end
if not ok then return {'refused', current, stamp} end
if plan.nonce_ttl > 0 and redis.call('EXISTS', KEYS[4]) == 1 then
  return {'replay', current, stamp}
end
if target == 'submitting' and plan.cap > 0
   and redis.call('ZCARD', KEYS[plan.inflight]) >= plan.cap then
  return {'capped', current, stamp}
end
local job_id = redis.call('HGET', KEYS[1], 'job_id')

-- writes
redis.call('HSET', KEYS[1], 'state', target, 'updated_at', stamp, target .. '_at', stamp)
if #plan.fields > 0 then redis.call('HSET', KEYS[1], unpack(plan.fields)) end
if #plan.delete > 0 then redis.call('HDEL', KEYS[1], unpack(plan.delete)) end
for _, k in ipairs(plan.stamp_once) do redis.call('HSETNX', KEYS[1], k, stamp) end
if plan.ttl > 0 then redis.call('EXPIRE', KEYS[1], plan.ttl) end
for _, index in ipairs(plan.leave) do redis.call('ZREM', KEYS[index], job_id) end
for _, j in ipairs(plan.join) do
  local score = string.format('%.3f', now + j[2])
  if j[3] then redis.call('ZADD', KEYS[j[1]], 'NX', score, job_id)
  else redis.call('ZADD', KEYS[j[1]], score, job_id) end
end
local remote_id = redis.call('HGET', KEYS[1], 'remote_id')
if remote_id then
  if plan.index_remote then redis.call('HSET', KEYS[3], remote_id, job_id)
  else redis.call('HDEL', KEYS[3], remote_id) end
end
if plan.nonce_ttl > 0 then redis.call('SET', KEYS[4], job_id, 'EX', plan.nonce_ttl) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', plan.maxlen, '*',
           'job_id', job_id, 'state', target, 'previous', current, 'at', stamp,
           unpack(plan.event))
return {'ok', current, stamp}
