-- A worker's store claim of the members ARGV[1..] has committed (or refused them): drop them
-- from processing. A busy worker acknowledges with its next take (take.lua); this is for a
-- worker about to wait. KEYS: processing.
return redis.call('ZREM', KEYS[1], unpack(ARGV))
