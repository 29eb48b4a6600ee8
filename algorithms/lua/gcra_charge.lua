-- gcra_charge.lua: spend n tokens of a GCRA key whatever it has left: the
-- cost of an admitted request beyond what it reserved. The theoretical
-- arrival time moves n emission intervals later, and may go beyond burst
-- intervals ahead of now (a debt that later requests pay off).
--
-- KEYS[1]  the TAT, as in gcra.lua
-- ARGV     rate, period_us, burst, n (positive integers, n <= 2 * burst)
-- returns  {remaining, 0, 0, reset_after_us}
--
-- The TAT goes at most 2 * burst intervals ahead of now (a debt of one
-- burst), and at most ratelimit.MaxRefill (100 years of 365 days), so that
-- it stays below 2^53 µs as long as gcra.lua's does. A charge never moves
-- back a TAT already further ahead (after the burst was lowered). Same
-- state, time and arithmetic rules as gcra.lua. Mirrored by
-- GCRAModel.Charge in model_quota.go.
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

-- Exact arithmetic (the same in every GCRA and sliding window script, from
-- gcra.lua). Lua's numbers are float64, which hold whole
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

-- cap: how far ahead the TAT may go.
local max_refill_us = 3153600000000000
local cap_us, cap_ticks = span(2 * burst)
if cap_us > max_refill_us or cap_us == max_refill_us and cap_ticks > 0 then
  cap_us, cap_ticks = max_refill_us, 0
end
local after_us, after_ticks = us, ticks
if us < cap_us or us == cap_us and ticks < cap_ticks then
  -- room = cap - ahead; the TAT moves by min(cost, room).
  local room_us, room_ticks = cap_us - us, cap_ticks - ticks
  if room_ticks < 0 then
    room_us, room_ticks = room_us - 1, room_ticks + rate
  end
  local cost_us, cost_ticks = span(n)
  if cost_us > room_us or cost_us == room_us and cost_ticks > room_ticks then
    after_us, after_ticks = cap_us, cap_ticks
  else
    after_us, after_ticks = us + cost_us, ticks + cost_ticks
    if after_ticks >= rate then
      after_us, after_ticks = after_us + 1, after_ticks - rate
    end
  end
end

local reset = after_us
if after_ticks > 0 then
  reset = reset + 1
end
redis.call('HSET', KEYS[1], 't', string.format('%d', now + after_us), 'f', string.format('%d', after_ticks))
redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
return {left(after_us, after_ticks), 0, 0, reset}
