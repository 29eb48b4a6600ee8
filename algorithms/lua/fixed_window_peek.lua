-- fixed_window_peek.lua: what the current window of a fixed window key has
-- left, without spending any of it.
--
-- KEYS[1]  the window, as in fixed_window.lua
-- ARGV     rate, period_us, burst (positive integers); n is not used
-- returns  {available (0|1: one token is), remaining, retry_after_us (until
--          one token is, 0 if available), reset_after_us (until the window
--          has its whole burst: its end, or 0 if it has spent nothing)}
--
-- Same state and time rules as fixed_window.lua; the script writes nothing.
-- Mirrored by FixedWindowModel.Peek in model_quota.go.

-- #include lib/fixed_window.lua

-- #include lib/count_peek.lua
