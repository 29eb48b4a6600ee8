-- gcra.lua: the generic cell rate algorithm (GCRA), a leaky bucket used as a
-- meter: the same admissions as a token bucket, tracked as one timestamp.
-- After the virtual scheduling algorithm of ITU-T I.371 and go-redis/redis_rate.
--
-- KEYS[1]  a hash {t = whole µs, f = remainder in 1/rate µs}: the theoretical
--          arrival time TAT = t + f/rate, in µs since the Unix epoch
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {allowed (0|1), remaining, retry_after_us, reset_after_us}
--
-- Every token costs one emission interval of period/rate µs. The TAT is the
-- instant at which the key is back to a full burst; a request for n tokens is
-- admitted when moving the TAT n intervals later keeps it at most burst
-- intervals ahead of now. Times are kept as whole µs plus a remainder in
-- ticks of 1/rate µs, so every quantity is a whole number and, with the
-- products computed by muldiv, exact for every limit that passes
-- ratelimit.Limit.Validate: unlike a float TAT, no rounding accumulates.
-- Time is the Redis server's (TIME), in microseconds. A missing key is a full
-- bucket; the key expires when the bucket would be full again. A denied
-- request writes nothing. Mirrored by GCRAModel.Decide in model.go.

-- #include lib/gcra.lua

local n = tonumber(ARGV[4])

local after_us, after_ticks = add(us, ticks, span(n))
if beyond(after_us, after_ticks, limit_us, limit_ticks) then
  -- Retry when the TAT is limit ahead: after - limit, rounded up to a µs.
  local retry = ceil(sub(after_us, after_ticks, limit_us, limit_ticks))
  return {0, left(us, ticks), retry, ceil(us, ticks)}
end
local reset = ceil(after_us, after_ticks)
save(after_us, after_ticks, reset)
return {1, left(after_us, after_ticks), 0, reset}
