-- gcra_refund.lua: give back n tokens to a GCRA key by moving its theoretical
-- arrival time n emission intervals earlier, but not before now (so the key
-- never exceeds its burst).
--
-- KEYS[1]  the TAT, as in gcra.lua
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {remaining, 0, 0, reset_after_us}
--
-- Same state, time and arithmetic rules as gcra.lua. The key is deleted when
-- the bucket is full. Mirrored by GCRAModel.Refund in model.go.

-- #include lib/gcra.lua

local n = tonumber(ARGV[4])

us, ticks = sub(us, ticks, span(n))
if us < 0 then
  us, ticks = 0, 0
end
local reset = ceil(us, ticks)
save(us, ticks, reset)
return {left(us, ticks), 0, 0, reset}
