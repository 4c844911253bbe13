-- Move up to ARGV[1] members, in claim order, from a queue's ready set into its processing
-- set, scored by their deadline: ARGV[2] ms after the Redis server's clock. Returns them.
-- KEYS: ready, processing.
local items = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
if #items == 0 then
  return items
end
local now = redis.call('TIME')
local deadline = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[2])
local scored, taken = {}, {}
for i = 1, #items, 2 do
  scored[#scored + 1] = deadline
  scored[#scored + 1] = items[i]
  taken[#taken + 1] = items[i]
end
redis.call('ZADD', KEYS[2], unpack(scored))
return taken
