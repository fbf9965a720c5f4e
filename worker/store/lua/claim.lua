-- claim.lua: take the due members of a schedule, pushing each one's score out by a lease.
--
-- KEYS[1]  the schedule (sorted set scored by unix time)
-- ARGV[1]  lease seconds (0: read only, scores unchanged)
-- ARGV[2]  at most this many members
-- ARGV[3]  lag seconds: due means scored at or before now - lag
-- ARGV[4]  optional: "withscores" returns member, due score, member, due score, ...
-- Returns the members. "now" is the Redis server's clock, the one clock every process
-- shares, so a worker whose own clock is off can neither starve nor double-claim.
local lease = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local lag = tonumber(ARGV[3])
assert(lease and limit and lag, 'lease, limit and lag must be numbers')
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local scored = ARGV[4] == 'withscores'
local due
if scored then
  due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.3f', now - lag),
                   'WITHSCORES', 'LIMIT', 0, limit)
else
  due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.3f', now - lag),
                   'LIMIT', 0, limit)
end
if lease > 0 then
  local until_ = string.format('%.3f', now + lease)
  local step = scored and 2 or 1
  for i = 1, #due, step do redis.call('ZADD', KEYS[1], until_, due[i]) end
end
return due
