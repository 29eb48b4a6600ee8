-- fixed_window_charge.lua: add n tokens to the count of the current window
-- of a fixed window key whatever it holds: the cost of an admitted request
-- beyond what it reserved. The count may exceed burst (a debt), up to
-- 2 * burst; the debt ends with the window.
--
-- KEYS[1]  the window, as in fixed_window.lua
-- ARGV     rate, period_us, burst, n (positive integers, n <= 2 * burst)
-- returns  {remaining, 0, 0, reset_after_us}
--
-- A charge never lowers a count already above 2 * burst (after the burst
-- was lowered). Same state and time rules as fixed_window.lua. Mirrored by
-- FixedWindowModel.Charge in model_quota.go.

-- #include lib/fixed_window.lua

-- #include lib/count_charge.lua
