-- schedule.lua: put a member on a schedule at "now + delay" by the Redis server's clock.
--
-- KEYS[1]  the schedule (sorted set)
-- ARGV[1]  member      ARGV[2]  delay seconds
-- ARGV[3]  mode: 'set' (always), 'xx' (only if still scheduled: a finished job must not
--          come back), 'nx' (only if absent)
-- Returns 1 when the score was written.
local member = ARGV[1]
local delay = tonumber(ARGV[2])
local mode = ARGV[3]
assert(delay and delay == delay, 'delay must be a number')
assert(mode == 'set' or mode == 'xx' or mode == 'nx', 'mode is set, xx or nx')
local t = redis.call('TIME')
local score = string.format('%.3f', tonumber(t[1]) + tonumber(t[2]) / 1000000 + delay)
if mode == 'set' then return redis.call('ZADD', KEYS[1], 'CH', score, member) end
return redis.call('ZADD', KEYS[1], string.upper(mode), 'CH', score, member)
