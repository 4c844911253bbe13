-- Add the members ARGV[1..] to a queue's ready set, except those a worker is claiming now
-- (in processing) or already there, and wake a waiting worker. Returns how many were added.
-- KEYS: ready, processing, wake.
local added = 0
for i = 1, #ARGV do
  if not redis.call('ZSCORE', KEYS[2], ARGV[i]) then
    added = added + redis.call('ZADD', KEYS[1], 'NX', 0, ARGV[i])
  end
end
if added > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return added
