-- fixed_window.lua: count requests in fixed windows and admit at most burst
-- per window.
--
-- KEYS[1]  a hash {w = window number, c = tokens spent in that window}
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {allowed (0|1), remaining, retry_after_us, reset_after_us}
--
-- Window number w covers [w * period, (w + 1) * period) µs since the Unix
-- epoch. Time is the Redis server's (TIME), in microseconds. A missing key,
-- or one holding an earlier window, counts zero; the key expires when its
-- window ends. A denied request writes nothing, and retries when the window
-- ends. rate is not used: a window admits burst. Mirrored by
-- FixedWindowModel.Decide in model.go.
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

if count + n > burst then
  local remaining = burst - count
  if remaining < 0 then
    remaining = 0
  end
  return {0, remaining, reset, reset}
end

count = count + n
redis.call('HSET', KEYS[1], 'w', string.format('%d', window), 'c', string.format('%d', count))
redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
return {1, burst - count, 0, reset}
