-- sliding_window_charge.lua: add n tokens to the count of the current
-- window of a sliding window key whatever it holds: the cost of an admitted
-- request beyond what it reserved. The count may exceed burst (a debt), up
-- to 2 * burst; as the window becomes the previous one, the debt weighs on
-- the next window's estimate, and is paid off by the end of that window.
--
-- KEYS[1]  the windows, as in sliding_window.lua
-- ARGV     rate, period_us, burst, n (positive integers, n <= 2 * burst)
-- returns  {remaining, 0, 0, reset_after_us}
--
-- A charge never lowers a count already above 2 * burst (after the burst
-- was lowered). Same state, time and arithmetic rules as sliding_window.lua.
-- Mirrored by SlidingWindowModel.Charge in model_quota.go.
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

local window, elapsed = divmod(now, period)

local cur, prev = 0, 0
local st = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
if st[1] then
  local w = tonumber(st[1])
  local c = tonumber(st[2])
  local p = tonumber(st[3])
  if w == nil or c == nil or p == nil then
    return redis.error_reply('ERR ratelimit: corrupt sliding window state at ' .. KEYS[1])
  end
  if w == window then
    cur, prev = c, p
  elseif w == window - 1 then
    prev = c
  end
end

if cur < 2 * burst then
  cur = math.min(cur + n, 2 * burst)
end
local share, rest = muldiv(prev, period - elapsed, period)
if rest > 0 then
  share = share + 1
end
local reset = 2 * period - elapsed
redis.call('HSET', KEYS[1], 'w', string.format('%d', window), 'c', string.format('%d', cur), 'p', string.format('%d', prev))
redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
return {math.max(burst - cur - share, 0), 0, 0, reset}
