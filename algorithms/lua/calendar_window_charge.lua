-- calendar_window_charge.lua: add n tokens to the count of the current
-- window of a calendar window key whatever it holds: the cost of an
-- admitted request beyond what it reserved. The count may exceed burst (a
-- debt), up to 2 * burst; the debt ends with the window.
--
-- KEYS[1]  the window, as in calendar_window.lua
-- ARGV     rate, period_us, burst, n (positive integers, n <= 2 * burst);
--          b0, b1, b2, b3: the window bounds, as in calendar_window.lua
-- returns  {remaining, 0, 0, reset_after_us}, or {0, 2, now_us, 0} when
--          neither the key's window nor any of the three holds now: the
--          caller computes the windows around now_us and runs it again
--
-- A charge never lowers a count already above 2 * burst (after the burst
-- was lowered). Same state, window and time rules as calendar_window.lua.
-- Mirrored by CalendarWindowModel.Charge in model_quota.go.
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local s, e, count = nil, nil, 0
local st = redis.call('HMGET', KEYS[1], 's', 'e', 'c')
if st[1] then
  local ss = tonumber(st[1])
  local se = tonumber(st[2])
  local sc = tonumber(st[3])
  if ss == nil or se == nil or sc == nil then
    return redis.error_reply('ERR ratelimit: corrupt calendar window state at ' .. KEYS[1])
  end
  if ss <= now and now < se then
    s, e, count = ss, se, sc
  end
end
if s == nil then
  for i = 5, 7 do
    local a = tonumber(ARGV[i])
    local b = tonumber(ARGV[i + 1])
    if a <= now and now < b then
      s, e = a, b
      break
    end
  end
  if s == nil then
    return {0, 2, now, 0}
  end
end

if count < 2 * burst then
  count = math.min(count + n, 2 * burst)
end
local reset = e - now
redis.call('HSET', KEYS[1], 's', string.format('%d', s), 'e', string.format('%d', e), 'c', string.format('%d', count))
redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
return {math.max(burst - count, 0), 0, 0, reset}
