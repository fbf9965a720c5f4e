-- dead_requeue.lua: put one dead message's bytes back on its queue and forget it, at once.
--
-- KEYS[1]  {p}:dead-message:<id>   KEYS[2]  {p}:dead-messages
-- KEYS[3]  the queue (a list) the caller read from the entry: the entry must still name it
-- ARGV[1]  id
-- Returns {1, size} when pushed, else {0, why}: missing | queue_changed | truncated.
--
-- LPUSH: producers push on the left and kombu pops on the right (BRPOP), so the entry
-- goes to the back of the line, like a fresh send and like kombu's own restore of an
-- unacked message. All checks happen before the first write.
assert(#KEYS == 3 and #ARGV == 1, 'KEYS: entry, index, queue; ARGV: id')
local e = redis.call('HMGET', KEYS[1], 'queue', 'truncated', 'raw')
if not e[1] or not e[3] then return {0, 'missing'} end
if e[1] ~= KEYS[3] then return {0, 'queue_changed'} end
if e[2] == '1' then return {0, 'truncated'} end
redis.call('LPUSH', KEYS[3], e[3])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return {1, string.len(e[3])}
