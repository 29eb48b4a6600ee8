-- gcra_peek.lua: what a GCRA key has left now, without spending any of it.
--
-- KEYS[1]  the TAT, as in gcra.lua
-- ARGV     rate, period_us, burst (positive integers); n is not used
-- returns  {available (0|1: one token is), remaining, retry_after_us (until
--          one token is, 0 if available), reset_after_us (until the key is
--          full)}
--
-- Same state, time and arithmetic rules as gcra.lua; the reply is what that
-- script would reply to a denied request for one token, or, for one it
-- would admit, the tokens before it. The script writes nothing. Mirrored by
-- GCRAModel.Peek in model_quota.go.

-- #include lib/gcra.lua

local after_us, after_ticks = add(us, ticks, span(1))
local reset = ceil(us, ticks)
if beyond(after_us, after_ticks, limit_us, limit_ticks) then
  local retry = ceil(sub(after_us, after_ticks, limit_us, limit_ticks))
  return {0, left(us, ticks), retry, reset}
end
return {1, left(us, ticks), 0, reset}
