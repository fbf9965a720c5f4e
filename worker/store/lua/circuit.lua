-- circuit.lua: open a pause for everyone (or report one), by the Redis server's clock.
--
-- KEYS[1]  the circuit key (its value: unix time the pause ends; it expires then too, so
--          PTTL alone tells a reader how long the pause has left)
-- ARGV[1]  pause seconds: > 0 opens the circuit unless it is open; 0 only reads it
-- Returns {opened (1/0), seconds left as a string ('0' when closed)}.
local pause = tonumber(ARGV[1])
assert(pause and pause >= 0, 'pause must be a number >= 0')
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if until_ > now then return {0, string.format('%.3f', until_ - now)} end
if pause == 0 then return {0, '0'} end
redis.call('SET', KEYS[1], string.format('%.3f', now + pause), 'PX', math.max(1, math.ceil(pause * 1000)))
return {1, string.format('%.3f', pause)}
