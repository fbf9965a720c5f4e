-- gcra.lua: one global rate limit (generic cell rate algorithm), by the Redis server's clock.
--
-- KEYS[1]  the limit's "theoretical arrival time" (microseconds)
-- ARGV[1]  emission interval (s)     ARGV[2]  burst (cells)
-- Returns the wait in microseconds (0 = granted).
local interval_s = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
assert(interval_s and burst, 'interval and burst must be numbers')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = math.floor(interval_s * 1000000)
local tolerance = interval * (burst - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1000)
return 0
