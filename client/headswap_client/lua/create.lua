-- create.lua: create a job record unless its id or its idempotency key is taken.
--
-- KEYS[1]  job hash    KEYS[2]  event stream    KEYS[3]  idempotency key (any key if unused)
-- KEYS[4..] the schedules, in the order of worker.store.keys.SCHEDULES
-- KEYS[#KEYS] the data epoch (written here if missing: the first record a Redis holds,
--          a producer's included, dates it — so a missing epoch beside jobs means a loss)
-- ARGV[1]  the plan, JSON:
--   job_id, state      the new job's id and first state ('queued' or 'rejected')
--   fields             [k, v, ...] (pre-encoded strings)
--   fingerprint        what the job asks for (a hash); equal fingerprints are the same job
--   idempotency        true when KEYS[3] is the job's idempotency key
--   idem_ttl           lifetime of the idempotency key (s)
--   join               [[KEYS index, delay s, only-if-absent], ...]
--   ttl                record lifetime (s, 0 = none)      maxlen  approximate stream cap
-- Returns {status, job id, now}:
--   created    the job is new
--   exists     the same job (same fingerprint) exists already under that id
--   conflict   the idempotency key belongs to job <id>, which asked for something else
--   taken      the job id exists with a different fingerprint
-- Every check and decode happens before the first write.
local plan = cjson.decode(ARGV[1])
assert(type(plan.job_id) == 'string' and type(plan.state) == 'string', 'job_id, state')
assert(#plan.fields % 2 == 0, 'fields are k, v pairs')
for _, j in ipairs(plan.join) do
  assert(type(j[2]) == 'number' and j[2] == j[2], 'join delay must be a number')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stamp = string.format('%.3f', now)

if plan.idempotency then
  -- the key's value is '<job id> <fingerprint>'
  local existing = redis.call('GET', KEYS[3])
  if existing then
    local id, theirs = string.match(existing, '^(%S+) (%S+)$')
    if not id then id = existing end
    if theirs and theirs ~= plan.fingerprint then return {'conflict', id, stamp} end
    return {'exists', id, stamp}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  local theirs = redis.call('HGET', KEYS[1], 'fp')
  if theirs and theirs ~= plan.fingerprint then return {'taken', plan.job_id, stamp} end
  return {'exists', plan.job_id, stamp}
end

redis.call('SET', KEYS[#KEYS], stamp, 'NX')
redis.call('HSET', KEYS[1], 'job_id', plan.job_id, 'state', plan.state, 'created_at', stamp,
           'updated_at', stamp, plan.state .. '_at', stamp, 'fp', plan.fingerprint)
if #plan.fields > 0 then redis.call('HSET', KEYS[1], unpack(plan.fields)) end
if plan.ttl > 0 then redis.call('EXPIRE', KEYS[1], plan.ttl) end
if plan.idempotency then
  redis.call('SET', KEYS[3], plan.job_id .. ' ' .. plan.fingerprint, 'EX', plan.idem_ttl)
end
for _, j in ipairs(plan.join) do
  local score = string.format('%.3f', now + j[2])
  if j[3] then redis.call('ZADD', KEYS[j[1]], 'NX', score, plan.job_id)
  else redis.call('ZADD', KEYS[j[1]], score, plan.job_id) end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', plan.maxlen, '*', 'job_id', plan.job_id,
           'state', plan.state, 'previous', '', 'at', stamp,
           'producer', redis.call('HGET', KEYS[1], 'producer') or 'default')
return {'created', plan.job_id, stamp}
