-- dead_write.lua: keep one dead message (a queue entry no worker could take), once.
--
-- KEYS[1]  {p}:dead-message:<id>   (hash)   KEYS[2]  {p}:dead-messages (zset: ids by time)
-- ARGV[1]  id          ARGV[2]  reason       ARGV[3]  queue the entry was taken from
-- ARGV[4]  size of the whole entry (bytes)   ARGV[5]  truncated: 1 when raw is only its head
-- ARGV[6]  raw bytes (at most the cap)       ARGV[7]  detail (short, safe to show)
-- Returns 1 when kept, 0 when that id is kept already (a redelivered message: same bytes).
--
-- Checks first (Redis does not roll a script back):
assert(#KEYS == 2 and #ARGV == 7, 'KEYS: entry, index; ARGV: id .. detail')
assert(tonumber(ARGV[4]) and (ARGV[5] == '0' or ARGV[5] == '1'), 'size, truncated 0|1')
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local at = string.format('%d.%06d', tonumber(t[1]), tonumber(t[2]))
redis.call('HSET', KEYS[1], 'reason', ARGV[2], 'queue', ARGV[3], 'at', at, 'size', ARGV[4],
           'truncated', ARGV[5], 'raw', ARGV[6], 'detail', ARGV[7])
redis.call('ZADD', KEYS[2], at, ARGV[1])
return 1
