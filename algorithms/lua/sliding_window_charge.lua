-- sliding_window_charge.lua: add n tokens to the count of the current
-- window of a sliding window key whatever it holds: the cost of an admitted
-- request beyond what it reserved. The count may exceed burst (a debt), up
-- to 2 * burst; as the window becomes the previous one, the debt weighs on
-- the next window's estimate, and is paid off by the end of that window.
--
-- KEYS[1]  the windows, as in sliding_window.lua
-- ARGV     rate, period_us, burst, n (positive integers, n <= 2 * burst)
-- returns  {remaining, 0, 0, reset_after_us}
--
-- A charge never lowers a count already above 2 * burst (after the burst
-- was lowered). Same state, time and arithmetic rules as sliding_window.lua.
-- Mirrored by SlidingWindowModel.Charge in model_quota.go.

-- #include lib/sliding_window.lua

local n = tonumber(ARGV[4])

if cur < 2 * burst then
  cur = math.min(cur + n, 2 * burst)
end
local reset = zero_after()
save(reset)
return {math.max(burst - cur - share, 0), 0, 0, reset}
