-- sliding_window_refund.lua: give back n tokens to the current window of a
-- sliding window key: its count goes down by n, but not below 0. Tokens
-- spent in an earlier window cannot be given back.
--
-- KEYS[1]  the windows, as in sliding_window.lua
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {remaining, 0, 0, reset_after_us}
--
-- Same state, time and arithmetic rules as sliding_window.lua. The key is
-- deleted when the estimate is zero. Mirrored by SlidingWindowModel.Refund in
-- model.go.

-- #include lib/sliding_window.lua

local n = tonumber(ARGV[4])

cur = cur - n
if cur < 0 then
  cur = 0
end
local reset = zero_after()
save(reset)
return {math.max(burst - cur - share, 0), 0, 0, reset}
