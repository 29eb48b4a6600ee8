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

-- #include lib/fixed_window.lua

-- #include lib/count_refund.lua
