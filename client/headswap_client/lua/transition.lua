-- transition.lua: move one job to a new state, all or nothing.
--
-- KEYS[1]  job hash              KEYS[2]  event stream        KEYS[3]  remote id -> job id hash
-- KEYS[4]  nonce key (a delivery id; used only when plan.nonce_ttl > 0)
-- KEYS[5..12] the schedules (sorted sets), in the order of headswap_client.keys.SCHEDULES
-- KEYS[13] the admission line (a lex-ordered zset; the job's member is its 'line' field)
-- KEYS[14] the admission counts (hash: busy:<producer> jobs in the in-flight schedule,
--          pend:<producer> jobs admitted whose create has not settled)
-- KEYS[15] the cost ledger (hash: d<day>:<producer>:credits / :jobs, day = unix days)
-- KEYS[16] the admission grants (hash: job id -> '<create slot> <admitted at>')
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
--   charge     optional number: the credits Akool charged for the job's task; recorded
--              once per job (field 'charged') and added to the ledger for today
--   charge_final  true: 'charge' is Akool's final charge (the detail's), which replaces a
--              hold recorded before (the difference goes to today's ledger), once
-- Returns {status, previous state, now, producer}: status ok | missing | refused | capped
-- | replay.
--
-- Admission bookkeeping (worker/store/lua/admit.lua writes the other half): leaving
-- 'queued' takes the job out of the admission line; every add to or removal from the
-- in-flight schedule moves its producer's busy count with it; the lock (queued ->
-- submitting) stamps when the job was admitted, and any other move settles its grant.
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
local charge = plan.charge
assert(charge == nil or (type(charge) == 'number' and charge == charge and charge >= 0),
       'charge must be a number >= 0')

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stamp = string.format('%.3f', now)

local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'missing', '', stamp, ''} end
local ok = false
for _, s in ipairs(plan.allowed) do if s == current then ok = true end end
if not ok then return {'refused', current, stamp, ''} end
if plan.nonce_ttl > 0 and redis.call('EXISTS', KEYS[4]) == 1 then
  return {'replay', current, stamp, ''}
end
local job_id = redis.call('HGET', KEYS[1], 'job_id')
local producer = redis.call('HGET', KEYS[1], 'producer') or 'default'
-- an admitted job holds its in-flight slot already: it does not count against itself
if target == 'submitting' and plan.cap > 0
   and redis.call('ZCARD', KEYS[plan.inflight]) >= plan.cap
   and not redis.call('ZSCORE', KEYS[plan.inflight], job_id) then
  return {'capped', current, stamp, producer}
end

-- writes
redis.call('HSET', KEYS[1], 'state', target, 'updated_at', stamp, target .. '_at', stamp)
if #plan.fields > 0 then redis.call('HSET', KEYS[1], unpack(plan.fields)) end
if #plan.delete > 0 then redis.call('HDEL', KEYS[1], unpack(plan.delete)) end
for _, k in ipairs(plan.stamp_once) do redis.call('HSETNX', KEYS[1], k, stamp) end
if plan.ttl > 0 then redis.call('EXPIRE', KEYS[1], plan.ttl) end
local busy = 0
for _, index in ipairs(plan.leave) do
  local removed = redis.call('ZREM', KEYS[index], job_id)
  if index == plan.inflight then busy = busy - removed end
end
for _, j in ipairs(plan.join) do
  local score = string.format('%.3f', now + j[2])
  local added
  if j[3] then added = redis.call('ZADD', KEYS[j[1]], 'NX', score, job_id)
  else added = redis.call('ZADD', KEYS[j[1]], score, job_id) end
  if j[1] == plan.inflight then busy = busy + added end
end
if busy ~= 0 then redis.call('HINCRBY', KEYS[14], 'busy:' .. producer, busy) end
if current == 'queued' then
  local member = redis.call('HGET', KEYS[1], 'line')
  if member then redis.call('ZREM', KEYS[13], member) end
end
local grant = redis.call('HGET', KEYS[16], job_id)
if grant and target == 'submitting' then
  redis.call('HSET', KEYS[1], 'admitted_at', string.match(grant, '(%S+)$'))
elseif grant then
  redis.call('HDEL', KEYS[16], job_id)
  redis.call('HINCRBY', KEYS[14], 'pend:' .. producer, -1)
end
if charge then
  local day = 'd' .. math.floor(now / 86400) .. ':' .. producer
  local prior = redis.call('HGET', KEYS[1], 'charged')
  if not prior then
    redis.call('HSET', KEYS[1], 'charged', tostring(charge))
    redis.call('HINCRBYFLOAT', KEYS[15], day .. ':credits', charge)
    redis.call('HINCRBY', KEYS[15], day .. ':jobs', 1)
  elseif plan.charge_final and redis.call('HGET', KEYS[1], 'charge_final') ~= '1' then
    local delta = charge - (tonumber(prior) or 0)
    if delta ~= 0 then
      redis.call('HSET', KEYS[1], 'charged', tostring(charge))
      redis.call('HINCRBYFLOAT', KEYS[15], day .. ':credits', delta)
    end
  end
  if plan.charge_final then redis.call('HSET', KEYS[1], 'charge_final', '1') end
end
local remote_id = redis.call('HGET', KEYS[1], 'remote_id')
if remote_id then
  if plan.index_remote then redis.call('HSET', KEYS[3], remote_id, job_id)
  else redis.call('HDEL', KEYS[3], remote_id) end
end
if plan.nonce_ttl > 0 then redis.call('SET', KEYS[4], job_id, 'EX', plan.nonce_ttl) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', plan.maxlen, '*',
           'job_id', job_id, 'state', target, 'previous', current, 'at', stamp,
           'producer', producer, unpack(plan.event))
return {'ok', current, stamp, producer}
