-- sliding_window_peek.lua: what a sliding window key has left now, without
-- spending any of it.
--
-- KEYS[1]  the windows, as in sliding_window.lua
-- ARGV     rate, period_us, burst (positive integers); n is not used
-- returns  {available (0|1: one token is), remaining, retry_after_us (until
--          one token is, 0 if available), reset_after_us (until the estimate
--          is zero)}
--
-- Same state, time and arithmetic rules as sliding_window.lua; the reply is
-- what that script would reply to a denied request for one token, or, for
-- one it would admit, the tokens before it. The script writes nothing.
-- Mirrored by SlidingWindowModel.Peek in model_quota.go.

-- #include lib/sliding_window.lua

-- room: the whole tokens left under the estimate (negative after the burst
-- was lowered).
local room = burst - cur - share
local reset = zero_after()
if room < 1 then
  return {0, math.max(room, 0), wait(1), reset}
end
return {1, room, 0, reset}
