-- fixed_window_peek.lua: what the current window of a fixed window key has
-- left, without spending any of it.
--
-- KEYS[1]  the window, as in fixed_window.lua
-- ARGV     rate, period_us, burst (positive integers); n is not used
-- returns  {available (0|1: one token is), remaining, retry_after_us (until
--          one token is, 0 if available), reset_after_us (until the window
--          has its whole burst: its end, or 0 if it has spent nothing)}
--
-- Same state and time rules as fixed_window.lua; the script writes nothing.
-- Mirrored by FixedWindowModel.Peek in model_quota.go.
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])

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

if count == 0 then
  return {1, burst, 0, 0}
end
local remaining = burst - count
if remaining < 1 then
  return {0, 0, reset, reset}
end
return {1, remaining, 0, reset}
