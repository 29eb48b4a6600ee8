-- calendar_window.lua: count requests in windows that follow a calendar
-- (the days, weeks or months of a time zone) and admit at most burst per
-- window.
--
-- KEYS[1]  a hash {s = window start, e = window end (µs since the Unix
--          epoch), c = tokens spent in [s, e)}
-- ARGV     rate, period_us, burst, n (positive integers); b0, b1, b2, b3:
--          the bounds of three consecutive windows [b0, b1), [b1, b2),
--          [b2, b3), in µs since the Unix epoch, which the caller computed
--          in the calendar's time zone around its own clock
-- returns  {allowed (0|1), remaining, retry_after_us, reset_after_us}, or
--          {2, now_us, 0, 0} when neither the key's window nor any of the
--          three holds now: the caller computes the windows around now_us
--          and runs the script again
--
-- Time is the Redis server's (TIME), in microseconds: it decides the
-- window. Lua in Redis has no time-zone database, so the windows come from
-- the caller. The key's own window, while it holds now, wins over the
-- caller's: every caller counts in the window that the first one of the
-- window wrote, even one with other time-zone rules, and a change of period
-- or zone applies from the end of the current window. A missing key, or one
-- holding an earlier window, counts zero; the key expires when its window
-- ends. A denied request writes nothing, and retries when the window ends.
-- rate and period are not used: a window admits burst. Mirrored by
-- CalendarWindowModel in calendar_model.go.

-- #include lib/calendar_window.lua

if not pick() then
  return {2, now, 0, 0}
end

-- #include lib/count_check.lua
