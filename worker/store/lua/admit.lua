-- admit.lua: fair admission of queued jobs to Akool, all or nothing.
--
-- Start-time fair queuing (a virtual-time scheduler): each producer has a line (its part
-- of the lex-ordered zset KEYS[1], by priority then arrival) and a pass; the eligible
-- producer whose start tag max(pass, V) is lowest goes next, V becomes that tag and its
-- pass grows by 1 / weight. A producer that was idle starts at V: it cannot bank credit.
-- A job admitted holds its in-flight slot (it joins KEYS[6] now, still 'queued') and its
-- create-rate slot (the GCRA state is advanced here), and is granted (KEYS[13]: job id ->
-- '<create slot> <admitted at>', server time); its submit message is re-sent from the
-- wake-up schedule if it is lost. transition.lua settles the grant.
--
-- KEYS[1] line   KEYS[2] counts (busy:/pend:)   KEYS[3] state (v, pass:, w:, tat:, seq)
-- KEYS[4] admissions per 10 s bucket   KEYS[5] ledger   KEYS[6] in-flight schedule
-- KEYS[7] wake-up schedule   KEYS[8] global create-rate state (as gcra.lua)
-- KEYS[9] event stream   KEYS[10..12] circuits that stop every create (credits, Akool
-- breaker, store lost)   KEYS[13] grants   KEYS[14] the job joining its line (any key
-- when none joins)
-- ARGV[1] the plan, JSON:
--   join      true: put KEYS[14]'s job in its line first (if queued and not granted)
--   cap       global in-flight cap (0 = none)
--   interval  s between creates at the global rate (0 = no rate)   burst  cells
--   horizon   s: a job is admitted when its create slot is at most this far ahead
--   lease     s: an admitted job's wake-up, in case its message is lost
--   max       most jobs this call admits (and fails)
--   policies  {producer: [weight, cap, share, budget, fail]}; "*" for producers not listed
--   estimate  credits a create is assumed to cost before one is known today
--   maxlen    approximate cap of the event stream
-- Returns {admitted, failed, held, waiting, wait, now, joined, grant}: admitted {job_id,
-- wait s, producer, ...};
-- failed {job_id, ...} (over budget with policy fail: still queued, the caller fails
-- them); held {producer, ...} (over budget since this call); waiting = jobs left in
-- lines; wait = s until the rate admits the next one (0 = none or unknown); joined = 1
-- when the joining job entered its line now; grant = the joining job's grant
-- ('<create slot> <admitted at>', this round's or an earlier one's), '' when it has none.
--
-- Every check and decode happens before the first write.
local plan = cjson.decode(ARGV[1])
for _, name in ipairs({'cap', 'interval', 'burst', 'horizon', 'lease', 'max', 'estimate',
                       'maxlen'}) do
  assert(type(plan[name]) == 'number' and plan[name] == plan[name], name .. ' is a number')
end
assert(type(plan.policies) == 'table' and type(plan.policies['*']) == 'table', 'policies')
for _, p in pairs(plan.policies) do
  assert(#p == 5 and type(p[1]) == 'number' and p[1] > 0, 'policy weights are > 0')
end

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stamp = string.format('%.3f', now)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local day = 'd' .. math.floor(now / 86400)

local function policy(producer)
  return plan.policies[producer] or plan.policies['*']
end
local function num(key, field)
  return tonumber(redis.call('HGET', key, field) or '0') or 0
end
local function producer_of(member) return string.match(member, '^([^|]+)|') end
-- the first member of a producer's line, and the first producer after one
local function head(producer)
  local m = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. producer .. '|', '[' .. producer .. '|\255',
                       'LIMIT', 0, 1)
  return m[1]
end
local function next_producer(after)
  local low = after and ('(' .. after .. '|\255') or '-'
  local m = redis.call('ZRANGEBYLEX', KEYS[1], low, '+', 'LIMIT', 0, 1)
  return m[1] and producer_of(m[1]) or nil
end

local empty = cjson.decode('[]')
local joined = false
if plan.join then
  local state = redis.call('HGET', KEYS[14], 'state')
  local job_id = redis.call('HGET', KEYS[14], 'job_id')
  if state == 'queued' and redis.call('HEXISTS', KEYS[13], job_id) == 0 then
    local member = redis.call('HGET', KEYS[14], 'line')
    if not member then
      local producer = redis.call('HGET', KEYS[14], 'producer') or 'default'
      local priority = tonumber(redis.call('HGET', KEYS[14], 'priority') or '5') or 5
      local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1)
      member = producer .. '|' .. (9 - priority) .. string.format('%015d', seq) .. '|' .. job_id
      redis.call('HSET', KEYS[14], 'line', member)
    end
    joined = redis.call('ZADD', KEYS[1], 0, member) == 1
    redis.call('ZREM', KEYS[7], job_id)  -- the line is its safety net now, not the wake-up
  end
end

for i = 10, 12 do  -- the credits pause, the Akool breaker, the store-lost hold
  if redis.call('EXISTS', KEYS[i]) == 1 then
    return {empty, empty, empty, redis.call('ZCARD', KEYS[1]), '0', stamp, joined and 1 or 0,
            ''}
  end
end

-- the backlogged producers and what each may still take
local cands = {}
local p = next_producer(nil)
while p do
  local pol = policy(p)
  local c = {name = p, head = head(p), pol = pol, busy = num(KEYS[2], 'busy:' .. p),
             pend = num(KEYS[2], 'pend:' .. p), pass = num(KEYS[3], 'pass:' .. p),
             tat = num(KEYS[3], 'tat:' .. p)}
  if pol[4] > 0 then
    c.spent = num(KEYS[5], day .. ':' .. p .. ':credits')
    local jobs = num(KEYS[5], day .. ':' .. p .. ':jobs')
    c.cost = jobs > 0 and c.spent / jobs or plan.estimate
  end
  table.insert(cands, c)
  if redis.call('HGET', KEYS[3], 'w:' .. p) ~= tostring(pol[1]) then
    redis.call('HSET', KEYS[3], 'w:' .. p, tostring(pol[1]))
  end
  p = next_producer(p)
end

local v = num(KEYS[3], 'v')
local interval = math.floor(plan.interval * 1000000)
local tolerance = interval * (plan.burst - 1)
local gtat = tonumber(redis.call('GET', KEYS[8]) or now_us) or now_us
if gtat < now_us then gtat = now_us end
local horizon = math.floor(plan.horizon * 1000000)
local inflight = redis.call('ZCARD', KEYS[6])
local admitted, failed, held = {}, {}, {}
local wait = 0
local taken = 0

while taken < plan.max do
  if plan.cap > 0 and inflight >= plan.cap then break end
  local slot = now_us
  if interval > 0 then
    slot = math.max(now_us, gtat - tolerance)
    if slot - now_us > horizon then wait = (slot - now_us - horizon) / 1000000; break end
  end
  local best, best_tag, best_slot = nil, nil, nil
  local i = 1
  while i <= #cands do
    local c = cands[i]
    local ok = c.head ~= nil and (c.pol[2] <= 0 or c.busy < c.pol[2])
    local own = slot
    if ok and interval > 0 and c.pol[3] < 1 then
      local step = math.floor(interval / c.pol[3])
      own = math.max(slot, math.max(c.tat, now_us) - step * (plan.burst - 1))
      ok = own - now_us <= horizon
    end
    if ok and c.pol[4] > 0 and c.spent + (c.pend + 1) * c.cost > c.pol[4] then
      ok = false
      if redis.call('HSETNX', KEYS[5], day .. ':' .. c.name .. ':held', stamp) == 1 then
        table.insert(held, c.name)
        redis.call('XADD', KEYS[9], 'MAXLEN', '~', plan.maxlen, '*', 'alert',
                   'budget_exhausted', 'producer', c.name, 'at', stamp,
                   'spent', tostring(c.spent), 'budget', tostring(c.pol[4]))
      end
      if c.pol[5] == 1 and taken < plan.max then  -- policy fail: the head goes, unadmitted
        local job = string.match(c.head, '|([^|]+)$')
        redis.call('ZREM', KEYS[1], c.head)
        redis.call('ZADD', KEYS[7], string.format('%.3f', now + plan.lease), job)
        table.insert(failed, job)
        taken = taken + 1
        c.head = redis.call('ZRANGEBYLEX', KEYS[1], '(' .. c.head, '[' .. c.name .. '|\255',
                            'LIMIT', 0, 1)[1]
      end
    end
    if ok then
      local tag = math.max(c.pass, v)
      if best == nil or tag < best_tag then best, best_tag, best_slot = c, tag, own end
    end
    i = i + 1
  end
  if best == nil then break end
  local member = best.head
  local job = string.match(member, '|([^|]+)$')
  redis.call('ZREM', KEYS[1], member)
  best.head = redis.call('ZRANGEBYLEX', KEYS[1], '(' .. member, '[' .. best.name .. '|\255',
                         'LIMIT', 0, 1)[1]
  local wait_s = (best_slot - now_us) / 1000000
  redis.call('HSET', KEYS[13], job, string.format('%.3f', now + wait_s) .. ' ' .. stamp)
  if redis.call('ZADD', KEYS[6], 'NX', stamp, job) == 1 then
    redis.call('HINCRBY', KEYS[2], 'busy:' .. best.name, 1)
  end
  redis.call('HINCRBY', KEYS[2], 'pend:' .. best.name, 1)
  redis.call('ZADD', KEYS[7], string.format('%.3f', now + wait_s + plan.lease), job)
  table.insert(admitted, job)
  table.insert(admitted, string.format('%.3f', wait_s))
  table.insert(admitted, best.name)
  if interval > 0 then
    gtat = math.max(gtat, now_us) + interval
    if best.pol[3] < 1 then
      best.tat = math.max(best.tat, now_us) + math.floor(interval / best.pol[3])
      redis.call('HSET', KEYS[3], 'tat:' .. best.name, string.format('%.0f', best.tat))
    end
  end
  v = best_tag
  best.pass = best_tag + 1 / best.pol[1]
  redis.call('HSET', KEYS[3], 'pass:' .. best.name, tostring(best.pass))
  best.pend = best.pend + 1
  best.busy = best.busy + 1
  inflight = inflight + 1
  taken = taken + 1
end

if #admitted > 0 then
  redis.call('HSET', KEYS[3], 'v', tostring(v))
  if interval > 0 then
    redis.call('SET', KEYS[8], string.format('%.0f', gtat),
               'PX', math.floor((gtat - now_us) / 1000) + 1000)
  end
  local bucket = tostring(math.floor(now / 10))
  redis.call('HINCRBY', KEYS[4], bucket, #admitted / 3)
  redis.call('HDEL', KEYS[4], tostring(math.floor(now / 10) - 7))  -- keep ~a minute
end
local grant = ''
if plan.join then grant = redis.call('HGET', KEYS[13], redis.call('HGET', KEYS[14], 'job_id')
                                     or '') or '' end
return {admitted, failed, held, redis.call('ZCARD', KEYS[1]), string.format('%.3f', wait),
        stamp, joined and 1 or 0, grant}
