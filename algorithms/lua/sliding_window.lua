-- sliding_window.lua: the sliding window counter. It estimates the tokens
-- spent over the last period from two fixed windows, weighting the previous
-- window by the share of it that still overlaps the last period, and admits
-- while the estimate stays at most burst. After Cloudflare's "How we built
-- rate limiting capable of scaling to millions of domains" (2017).
--
-- KEYS[1]  a hash {w = window number, c = tokens spent in window w,
--          p = tokens spent in window w - 1}
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {allowed (0|1), remaining, retry_after_us, reset_after_us}
--
-- Window number w covers [w * period, (w + 1) * period) µs since the Unix
-- epoch; elapsed is how far now is into the current window. The estimate is
--     prev * (1 - elapsed / period) + cur
-- and a request for n is admitted when estimate + n <= burst. The script
-- keeps the estimate multiplied by period, so that every quantity is a whole
-- number, exact in float64 while burst * period_us stays below 2^52, and the
-- retry time is exact: no float weight is ever rounded. remaining is the
-- whole tokens left under the estimate; reset_after is the time until the
-- estimate is back to zero (the end of the next window while the current
-- one has a count). Time is the Redis server's (TIME), in microseconds. A
-- missing key counts zero; the key expires when the estimate would be zero.
-- A denied request writes nothing. rate is not used: a window admits burst.
-- Mirrored by SlidingWindowModel.Decide in model.go.
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

local limit = burst * period
local used = prev * (period - elapsed) + cur * period
local after = used + n * period
if after > limit then
  local retry
  if cur + n <= burst then
    -- prev decays within this window (or just at its end): wait until
    -- prev * (period - e) <= (burst - n - cur) * period. prev > 0 here.
    retry = period - math.floor((burst - n - cur) * period / prev) - elapsed
  else
    -- cur becomes the previous window: wait in the next window until
    -- cur * (period - e) <= (burst - n) * period. cur > 0 here.
    retry = 2 * period - math.floor((burst - n) * period / cur) - elapsed
  end
  local remaining = math.floor((limit - used) / period)
  if remaining < 0 then
    remaining = 0
  end
  local reset = 0
  if cur > 0 then
    reset = 2 * period - elapsed
  elseif prev > 0 then
    reset = period - elapsed
  end
  return {0, remaining, retry, reset}
end

cur = cur + n
local reset = 2 * period - elapsed
redis.call('HSET', KEYS[1], 'w', string.format('%d', window), 'c', string.format('%d', cur), 'p', string.format('%d', prev))
redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
return {1, math.floor((limit - after) / period), 0, reset}
