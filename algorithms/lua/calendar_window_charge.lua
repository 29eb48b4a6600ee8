-- calendar_window_charge.lua: add n tokens to the count of the current
-- window of a calendar window key whatever it holds: the cost of an
-- admitted request beyond what it reserved. The count may exceed burst (a
-- debt), up to 2 * burst; the debt ends with the window.
--
-- KEYS[1]  the window, as in calendar_window.lua
-- ARGV     rate, period_us, burst, n (positive integers, n <= 2 * burst);
--          b0, b1, b2, b3: the window bounds, as in calendar_window.lua
-- returns  {remaining, 0, 0, reset_after_us}, or {0, 2, now_us, 0} when
--          neither the key's window nor any of the three holds now: the
--          caller computes the windows around now_us and runs it again
--
-- A charge never lowers a count already above 2 * burst (after the burst
-- was lowered). Same state, window and time rules as calendar_window.lua.
-- Mirrored by CalendarWindowModel.Charge in model_quota.go.

-- #include lib/calendar_window.lua

if not pick() then
  return {0, 2, now, 0}
end

-- #include lib/count_charge.lua
