-- fixed_window_refund.lua: give back n tokens to the current window of a
-- fixed window key: its count goes down by n, but not below 0. Tokens spent
-- in an earlier window are gone with it and cannot be given back.
--
-- KEYS[1]  the window, as in fixed_window.lua
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {remaining, 0, 0, reset_after_us}
--
-- Same state and time rules as fixed_window.lua. The key is deleted when the
-- count reaches 0. Mirrored by FixedWindowModel.Refund in model.go.
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

count = count - n
if count < 0 then
  count = 0
end
local remaining = burst - count
if remaining < 0 then
  remaining = 0
end
if count > 0 then
  redis.call('HSET', KEYS[1], 'w', string.format('%d', window), 'c', string.format('%d', count))
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
else
  redis.call('DEL', KEYS[1])
  reset = 0
end
return {remaining, 0, 0, reset}
