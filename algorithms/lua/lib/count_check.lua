-- Check: spend n tokens of a window's count if burst allows, for a window
-- script's state fragment (count, reset, save). A denied request writes
-- nothing, and retries when the window ends.
local n = tonumber(ARGV[4])

if count + n > burst then
  return {0, math.max(burst - count, 0), reset, reset}
end
count = count + n
save(reset)
return {1, burst - count, 0, reset}
