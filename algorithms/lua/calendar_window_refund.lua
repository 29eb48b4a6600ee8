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

-- #include lib/calendar_window.lua

-- #include lib/count_refund.lua
