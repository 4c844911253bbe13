-- A worker's store claim of the members ARGV[2..] has committed (or refused them): drop them
-- from processing. When it claimed something (ARGV[1] == '1') and ids are still ready, wake
-- the next waiting worker: one token per hand-off, never a herd, and no token when nothing
-- could be claimed (a paused or full queue would otherwise bounce tokens between workers).
-- KEYS: ready, processing, wake.
redis.call('ZREM', KEYS[2], unpack(ARGV, 2))
if ARGV[1] == '1' and redis.call('ZCARD', KEYS[1]) > 0 and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return 0
