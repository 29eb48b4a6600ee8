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
-- intervals ahead of now. Quantities are counted in ticks of 1/rate µs, so a
-- token is period ticks and every quantity is a whole number, exact in
-- float64 while burst * period_us stays below 2^52: unlike a float TAT, no
-- rounding accumulates. Time is the Redis server's (TIME), in microseconds.
-- A missing key is a full bucket; the key expires when the bucket would be
-- full again. A denied request writes nothing. Mirrored by GCRAModel.Decide
-- in model.go.
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- ahead: how far the TAT is ahead of now, in ticks (0: the bucket is full).
local ahead = 0
local st = redis.call('HMGET', KEYS[1], 't', 'f')
if st[1] then
  local tat = tonumber(st[1])
  local frac = tonumber(st[2])
  if tat == nil or frac == nil then
    return redis.error_reply('ERR ratelimit: corrupt gcra state at ' .. KEYS[1])
  end
  ahead = (tat - now) * rate + frac
  if ahead < 0 then
    ahead = 0
  end
end

local limit = burst * period
local after = ahead + n * period
if after > limit then
  local remaining = math.floor((limit - ahead) / period)
  if remaining < 0 then
    remaining = 0
  end
  return {0, remaining, math.ceil((after - limit) / rate), math.ceil(ahead / rate)}
end

local whole = math.floor(after / rate)
local reset = math.ceil(after / rate)
redis.call('HSET', KEYS[1], 't', string.format('%d', now + whole), 'f', string.format('%d', after - whole * rate))
redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
return {1, math.floor((limit - after) / period), 0, reset}
