-- calendar_window_peek.lua: what the current window of a calendar window
-- key has left, without spending any of it.
--
-- KEYS[1]  the window, as in calendar_window.lua
-- ARGV     rate, period_us, burst (positive integers); n is not used
-- returns  {available (0|1: one token is), remaining, retry_after_us (until
--          one token is, 0 if available), reset_after_us (until the window
--          has its whole burst: its end, or 0 if it has spent nothing)}
--
-- Same state and time rules as calendar_window.lua. A key that holds no
-- window of now has spent nothing in it, so no window bounds are needed.
-- The script writes nothing. Mirrored by CalendarWindowModel.Peek in
-- model_quota.go.
local burst = tonumber(ARGV[3])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local e, count = 0, 0
local st = redis.call('HMGET', KEYS[1], 's', 'e', 'c')
if st[1] then
  local ss = tonumber(st[1])
  local se = tonumber(st[2])
  local sc = tonumber(st[3])
  if ss == nil or se == nil or sc == nil then
    return redis.error_reply('ERR ratelimit: corrupt calendar window state at ' .. KEYS[1])
  end
  if ss <= now and now < se then
    e, count = se, sc
  end
end

if count == 0 then
  return {1, burst, 0, 0}
end
local reset = e - now
local remaining = burst - count
if remaining < 1 then
  return {0, 0, reset, reset}
end
return {1, remaining, 0, reset}
