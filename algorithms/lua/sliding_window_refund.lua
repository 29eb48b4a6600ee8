-- sliding_window_refund.lua: give back n tokens to the current window of a
-- sliding window key: its count goes down by n, but not below 0. Tokens
-- spent in an earlier window cannot be given back.
--
-- KEYS[1]  the windows, as in sliding_window.lua
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {remaining, 0, 0, reset_after_us}
--
-- Same state and time rules as sliding_window.lua. The key is deleted when
-- the estimate is zero. Mirrored by SlidingWindowModel.Refund in model.go.
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local window = math.floor(now / period)
local elapsed = now - window * period

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

cur = cur - n
if cur < 0 then
  cur = 0
end
local remaining = math.floor((burst * period - (prev * (period - elapsed) + cur * period)) / period)
if remaining < 0 then
  remaining = 0
end
local reset = 0
if cur > 0 then
  reset = 2 * period - elapsed
elseif prev > 0 then
  reset = period - elapsed
end
if reset > 0 then
  redis.call('HSET', KEYS[1], 'w', string.format('%d', window), 'c', string.format('%d', cur), 'p', string.format('%d', prev))
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
else
  redis.call('DEL', KEYS[1])
end
return {remaining, 0, 0, reset}
