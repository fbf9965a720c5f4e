-- analysis_claim.lua: take the right to start the analysis of one source video.
--
-- KEYS[1]  the analysis hash of the URL
-- ARGV[1]  the video URL    ARGV[2]  TTL of the record (s)
-- ARGV[3]  stale after (s): a pending claim that never got an Akool id is taken over
-- Returns {'claimed'} or {'existing', k, v, ...} (the stored analysis).
-- One step: a worker that dies after it leaves a record with its start time and a TTL,
-- which the next claim ages out; never a status without started_at.
local ttl = tonumber(ARGV[2])
local stale = tonumber(ARGV[3])
assert(ttl and stale, 'ttl and stale must be numbers')
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local info = redis.call('HGETALL', KEYS[1])
if #info > 0 then
  local record = {}
  for i = 1, #info, 2 do record[info[i]] = info[i + 1] end
  local started = tonumber(record['started_at'] or '0') or 0
  local abandoned = record['status'] == 'pending' and not record['analysis_id']
                    and now - started > stale
  if not abandoned then
    local out = {'existing'}
    for _, v in ipairs(info) do table.insert(out, v) end
    return out
  end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'status', 'pending', 'video_url', ARGV[1],
           'started_at', string.format('%.3f', now))
redis.call('EXPIRE', KEYS[1], ttl)
return {'claimed'}
