-- fixed_window_charge.lua: add n tokens to the count of the current window
-- of a fixed window key whatever it holds: the cost of an admitted request
-- beyond what it reserved. The count may exceed burst (a debt), up to
-- 2 * burst; the debt ends with the window.
--
-- KEYS[1]  the window, as in fixed_window.lua
-- ARGV     rate, period_us, burst, n (positive integers, n <= 2 * burst)
-- returns  {remaining, 0, 0, reset_after_us}
--
-- A charge never lowers a count already above 2 * burst (after the burst
-- was lowered). Same state and time rules as fixed_window.lua. Mirrored by
-- FixedWindowModel.Charge in model_quota.go.
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local window = math.floor(now / period)
local reset = period - (now - window * period)

local count = 0
local st = redis.call('HMGET', KEYS[1], 'w', 'c')
if st[1] then
  local w = tonumber(st[1])
  local c = tonumber(st[2])
  if w == nil or c == nil then
    return redis.error_reply('ERR ratelimit: corrupt fixed window state at ' .. KEYS[1])
  end
  if w == window then
    count = c
  end
end

if count < 2 * burst then
  count = math.min(count + n, 2 * burst)
end
redis.call('HSET', KEYS[1], 'w', string.format('%d', window), 'c', string.format('%d', count))
redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
return {math.max(burst - count, 0), 0, 0, reset}
