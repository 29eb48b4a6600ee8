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
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

-- Exact arithmetic (the same in gcra.lua, gcra_refund.lua, sliding_window.lua
-- and sliding_window_refund.lua). Lua's numbers are float64, which hold whole
-- numbers exactly below 2^53; a product of two valid quantities (a burst and
-- a period in µs, a time and a rate) can exceed that, so muldiv computes it
-- in parts, every one a whole number below 2^53.

-- divmod returns q = floor(x / m) and r = x - q * m, for whole numbers x and
-- m > 0 with |x| + m <= 2^53. The float division may round q up by one; the
-- remainder then shows it, and is corrected.
local function divmod(x, m)
  local q = math.floor(x / m)
  local r = x - q * m
  if r < 0 then
    q, r = q - 1, r + m
  elseif r >= m then
    q, r = q + 1, r - m
  end
  return q, r
end

-- muldiv returns q = floor(a * b / m) and r = a * b - q * m, exactly, for
-- whole numbers 0 <= a, b <= 2^52 and 0 < m < 2^45 such that q < 2^53.
local function muldiv(a, b, m)
  local p = a * b
  if p <= 2^52 then
    return divmod(p, m)
  end
  -- a * b = (aq * b + ar * bq) * m + ar * br, where ar, br < m.
  local aq, ar = divmod(a, m)
  local bq, br = divmod(b, m)
  -- ar * br = h * m + r, by long multiplication in the seven 7-bit digits
  -- of ar (ar < 2^45), most significant first: r * 128 + digit * br stays
  -- below 2^8 * m < 2^53.
  local h, r = 0, 0
  for shift = 42, 0, -7 do
    local dq, dr = divmod(r * 128 + math.floor(ar / 2^shift) % 128 * br, m)
    h, r = h * 128 + dq, dr
  end
  return aq * b + ar * bq + h, r
end
-- End of exact arithmetic.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- A time is a pair: whole µs and a remainder of 0 to rate - 1 ticks.
-- span returns k emission intervals, k * period / rate µs.
local iq, ir = divmod(period, rate)
local function span(k)
  local q, r = muldiv(k, ir, rate)
  return k * iq + q, r
end
local limit_us, limit_ticks = span(burst)

-- left returns the whole tokens left when the TAT is us, ticks ahead of
-- now: floor((limit - ahead) / interval), at least 0.
local function left(us, ticks)
  local dus, dticks = limit_us - us, limit_ticks - ticks
  if dticks < 0 then
    dus, dticks = dus - 1, dticks + rate
  end
  if dus < 0 then
    return 0
  end
  local q, r = muldiv(dus, rate, period)
  return q + divmod(r + dticks, period)
end

-- ahead: how far the TAT is ahead of now (0, 0: the bucket is full).
local us, ticks = 0, 0
local st = redis.call('HMGET', KEYS[1], 't', 'f')
if st[1] then
  local tat = tonumber(st[1])
  local frac = tonumber(st[2])
  if tat == nil or frac == nil then
    return redis.error_reply('ERR ratelimit: corrupt gcra state at ' .. KEYS[1])
  end
  local carry
  carry, ticks = divmod(frac, rate) -- frac >= rate after a change of rate
  us = tat - now + carry
  if us < 0 then
    us, ticks = 0, 0
  end
end

local cost_us, cost_ticks = span(n)
local after_us, after_ticks = us + cost_us, ticks + cost_ticks
if after_ticks >= rate then
  after_us, after_ticks = after_us + 1, after_ticks - rate
end
if after_us > limit_us or after_us == limit_us and after_ticks > limit_ticks then
  -- Retry when the TAT is limit ahead: after - limit, rounded up to a µs.
  local retry_us, retry_ticks = after_us - limit_us, after_ticks - limit_ticks
  if retry_ticks > 0 then
    retry_us = retry_us + 1
  end
  local reset = us
  if ticks > 0 then
    reset = reset + 1
  end
  return {0, left(us, ticks), retry_us, reset}
end

local reset = after_us
if after_ticks > 0 then
  reset = reset + 1
end
redis.call('HSET', KEYS[1], 't', string.format('%d', now + after_us), 'f', string.format('%d', after_ticks))
redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
return {1, left(after_us, after_ticks), 0, reset}
