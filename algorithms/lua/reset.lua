-- reset.lua: give a key of any algorithm its full limit again, by deleting
-- its state: a missing key is full (a whole bucket, an empty window) for
-- every script of this package.
--
-- KEYS[1]  the state of one client key, of any algorithm
-- ARGV     rate, period_us, burst (positive integers); n is not used
-- returns  {burst, 0, 0, 0}: the key has its whole burst, and is full now
redis.call('DEL', KEYS[1])
return {tonumber(ARGV[3]), 0, 0, 0}
