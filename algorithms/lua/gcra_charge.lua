-- gcra_charge.lua: spend n tokens of a GCRA key whatever it has left: the
-- cost of an admitted request beyond what it reserved. The theoretical
-- arrival time moves n emission intervals later, and may go beyond burst
-- intervals ahead of now (a debt that later requests pay off).
--
-- KEYS[1]  the TAT, as in gcra.lua
-- ARGV     rate, period_us, burst, n (positive integers, n <= 2 * burst)
-- returns  {remaining, 0, 0, reset_after_us}
--
-- The TAT goes at most 2 * burst intervals ahead of now (a debt of one
-- burst), and at most ratelimit.MaxRefill (100 years of 365 days), so that
-- it stays below 2^53 µs as long as gcra.lua's does. A charge never moves
-- back a TAT already further ahead (after the burst was lowered). Same
-- state, time and arithmetic rules as gcra.lua. Mirrored by
-- GCRAModel.Charge in model_quota.go.

-- #include lib/gcra.lua

local n = tonumber(ARGV[4])

-- cap: how far ahead the TAT may go.
local max_refill_us = 3153600000000000
local cap_us, cap_ticks = span(2 * burst)
if beyond(cap_us, cap_ticks, max_refill_us, 0) then
  cap_us, cap_ticks = max_refill_us, 0
end
local after_us, after_ticks = us, ticks
if beyond(cap_us, cap_ticks, us, ticks) then
  -- room = cap - ahead; the TAT moves by min(cost, room).
  local cost_us, cost_ticks = span(n)
  if beyond(cost_us, cost_ticks, sub(cap_us, cap_ticks, us, ticks)) then
    after_us, after_ticks = cap_us, cap_ticks
  else
    after_us, after_ticks = add(us, ticks, cost_us, cost_ticks)
  end
end

local reset = ceil(after_us, after_ticks)
save(after_us, after_ticks, reset)
return {left(after_us, after_ticks), 0, 0, reset}
