-- Put back into ready up to ARGV[1] members whose claim deadline has passed (their worker
-- died, or lost Redis, between taking them and acknowledging its store claim). Returns
-- {recovered, ready size, processing size}. KEYS: ready, processing, wake.
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ms, 'LIMIT', 0, ARGV[1])
for i = 1, #due do
  redis.call('ZREM', KEYS[2], due[i])
  redis.call('ZADD', KEYS[1], 'NX', 0, due[i])
end
if #due > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return {#due, redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}
