-- Acknowledge the members ARGV[3..] (this worker's previous take from this queue, whose store
-- claim has committed: drop them from processing), then move up to ARGV[1] members, in claim
-- order, from the ready set into processing, scored by their deadline: ARGV[2] ms after the
-- Redis server's clock. If ids are still ready after that, wake the next waiting worker (one
-- token at a time, never a herd). Returns the members taken.
-- KEYS: ready, processing, wake.
if #ARGV > 2 then
  redis.call('ZREM', KEYS[2], unpack(ARGV, 3))
end
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
if redis.call('ZCARD', KEYS[1]) > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return taken
