-- sliding_window_peek.lua: what a sliding window key has left now, without
-- spending any of it.
--
-- KEYS[1]  the windows, as in sliding_window.lua
-- ARGV     rate, period_us, burst (positive integers); n is not used
-- returns  {available (0|1: one token is), remaining, retry_after_us (until
--          one token is, 0 if available), reset_after_us (until the estimate
--          is zero)}
--
-- Same state, time and arithmetic rules as sliding_window.lua; the reply is
-- what that script would reply to a denied request for one token, or, for
-- one it would admit, the tokens before it. The script writes nothing.
-- Mirrored by SlidingWindowModel.Peek in model_quota.go.
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])

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

-- room: the whole tokens left under the estimate (negative after the burst
-- was lowered).
local share, rest = muldiv(prev, period - elapsed, period)
if rest > 0 then
  share = share + 1
end
local room = burst - cur - share

local reset = 0
if cur > 0 then
  reset = 2 * period - elapsed
elseif prev > 0 then
  reset = period - elapsed
end
if room < 1 then
  local retry
  if cur + 1 <= burst then
    -- prev decays within this window (or just at its end). prev > 0 here.
    retry = period - muldiv(burst - 1 - cur, period, prev) - elapsed
  else
    -- cur becomes the previous window. cur > 0 here.
    retry = 2 * period - muldiv(burst - 1, period, cur) - elapsed
  end
  return {0, math.max(room, 0), retry, reset}
end
return {1, room, 0, reset}
