-- now: the Redis server's time (TIME), in µs since the Unix epoch.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
