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

-- #include lib/fixed_window.lua

-- #include lib/count_check.lua
