-- analysis_update.lua: write fields of an analysis record that still exists.
--
-- KEYS[1]  the analysis hash of one source URL
-- ARGV[1]  the plan, JSON: fields [k, v, ...]; ttl (s, 0 = keep); status ('' = any):
--          write only while the record's status is this one
-- Returns 1 when written, 0 when the record is gone (expired or abandoned) or moved on.
local plan = cjson.decode(ARGV[1])
assert(#plan.fields % 2 == 0 and type(plan.ttl) == 'number', 'fields pairs, ttl number')
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
if plan.status ~= '' and status ~= plan.status then return 0 end
if #plan.fields > 0 then redis.call('HSET', KEYS[1], unpack(plan.fields)) end
if plan.ttl > 0 then redis.call('EXPIRE', KEYS[1], plan.ttl) end
return 1
