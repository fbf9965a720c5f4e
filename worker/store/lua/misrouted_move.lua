-- misrouted_move.lua: move one message from the queue it was wrongly sent to onto ours.
--
-- KEYS[1]  the list it waits in (``celery``)     KEYS[2]  the list of its own queue
-- KEYS[3]  {p}:misrouted (hash: moved, last_at, last_task)
-- ARGV[1]  the entry's bytes, as read      ARGV[2]  the same message, re-addressed
-- ARGV[3]  its task name
-- Returns 1 when moved, 0 when the entry is no longer there (someone took it).
--
-- The removal and the push are one step: the message is never in both lists, and never
-- in neither. LREM 1 looks from the newest end, where the scan found it (identical bytes
-- are the same message: one copy goes per call); LPUSH puts it at the back
-- of its queue, like a fresh send (and like kombu's restore of an unacked message).
assert(#KEYS == 3 and #ARGV == 3, 'KEYS: source, target, tally; ARGV: entry, new, task')
assert(ARGV[2] ~= '' and ARGV[3] ~= '', 'ARGV: the new entry and the task must not be empty')
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
local t = redis.call('TIME')
redis.call('HINCRBY', KEYS[3], 'moved', 1)
redis.call('HSET', KEYS[3], 'last_at', t[1] .. '.' .. string.format('%06d', tonumber(t[2])),
           'last_task', ARGV[3])
return 1
