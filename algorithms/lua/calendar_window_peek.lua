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

-- #include lib/calendar_window.lua

-- #include lib/count_peek.lua
