-- calendar_window_refund.lua: give back n tokens to the current window of
-- a calendar window key: its count goes down by n, but not below 0. Tokens
-- spent in an earlier window are gone with it and cannot be given back.
--
-- KEYS[1]  the window, as in calendar_window.lua
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {remaining, 0, 0, reset_after_us}
--
-- Same state and time rules as calendar_window.lua; a key that holds no
-- window of now has nothing to give back to, so no window bounds are
-- needed. The key is deleted when the count reaches 0. Mirrored by
-- CalendarWindowModel.Refund in calendar_model.go.
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local s, e, count = 0, 0, 0
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

count = count - n
if count < 0 then
  count = 0
end
local remaining = burst - count
if remaining < 0 then
  remaining = 0
end
if count > 0 then
  local reset = e - now
  redis.call('HSET', KEYS[1], 's', string.format('%d', s), 'e', string.format('%d', e), 'c', string.format('%d', count))
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
  return {remaining, 0, 0, reset}
end
redis.call('DEL', KEYS[1])
return {remaining, 0, 0, 0}
