-- misrouted_scan.lua: find our task messages waiting in another queue (Celery's default).
--
-- KEYS[1..n]  the lists to look in (``celery`` and its priority lists)
-- ARGV[1]     how many entries of each list to look at, the newest (the left end:
--             producers LPUSH, kombu BRPOPs from the right): a message sent since the
--             last scan is among them unless more than that many were sent meanwhile
-- Returns a flat list {i, entry, i, entry, ...}: the index of the key (1-based) and the
-- entry's bytes, for each entry whose text names a task ``headswap.*`` in its headers
-- (a prefilter only: the caller parses the envelope before it acts). Reads only.
assert(#KEYS >= 1 and #ARGV == 1, 'KEYS: lists; ARGV: limit')
local limit = tonumber(ARGV[1])
assert(limit and limit >= 1 and limit == math.floor(limit), 'ARGV[1]: a positive count')
local out = {}
for i, key in ipairs(KEYS) do
  local entries = redis.call('LRANGE', key, 0, limit - 1)
  for _, e in ipairs(entries) do
    if string.find(e, 'headswap.', 1, true) and string.find(e, '"task"%s*:%s*"headswap%.') then
      out[#out + 1] = i
      out[#out + 1] = e
    end
  end
end
return out
