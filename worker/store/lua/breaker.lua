-- breaker.lua: count one more consecutive failure of a remote service; open its circuit
-- (a pause for everyone) once the count reaches the threshold. By the server's clock.
--
-- KEYS[1]  the failure counter      KEYS[2]  the circuit key (as circuit.lua: its value is
--                                            the unix time the pause ends; it expires then)
-- ARGV[1]  threshold (integer >= 1)  ARGV[2]  first pause (s)  ARGV[3]  longest pause (s)
-- ARGV[4]  counter lifetime (s): failures this far apart are not consecutive
-- The pause doubles with each failure past the threshold (the probe's failures too).
-- Returns {opened (1/0), seconds left as a string ('0' when closed), failures}.
local threshold = tonumber(ARGV[1])
local first, longest, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
assert(threshold and threshold >= 1 and threshold == math.floor(threshold), 'threshold')
assert(first and first > 0 and longest and longest >= first, 'pauses')
assert(ttl and ttl >= 1, 'counter lifetime')
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local failures = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], math.ceil(ttl))
if failures < threshold then return {0, '0', failures} end
local until_ = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if until_ > now then return {0, string.format('%.3f', until_ - now), failures} end
local pause = math.min(longest, first * 2 ^ math.min(30, failures - threshold))
redis.call('SET', KEYS[2], string.format('%.3f', now + pause), 'PX', math.max(1, math.ceil(pause * 1000)))
return {1, string.format('%.3f', pause), failures}
