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
-- and a request for n is admitted when estimate + n <= burst, that is when
-- n <= burst - cur - ceil(prev * (period - elapsed) / period): the previous
-- window's share, rounded up to a whole token. With the products computed by
-- muldiv, every quantity is a whole number, exact for every limit that passes
-- ratelimit.Limit.Validate, and the retry time is exact: no float weight is
-- ever rounded. remaining is the whole tokens left under the estimate;
-- reset_after is the time until the estimate is back to zero (the end of the
-- next window while the current one has a count). Time is the Redis server's
-- (TIME), in microseconds. A missing key counts zero; the key expires when
-- the estimate would be zero. A denied request writes nothing. rate is not
-- used: a window admits burst. Mirrored by SlidingWindowModel.Decide in
-- model.go.

-- #include lib/sliding_window.lua

local n = tonumber(ARGV[4])

-- room: the whole tokens left under the estimate (negative after the burst
-- was lowered).
local room = burst - cur - share
if room < n then
  return {0, math.max(room, 0), wait(n), zero_after()}
end

cur = cur + n
local reset = zero_after()
save(reset)
return {1, room - n, 0, reset}
