-- Charge: add n tokens to a window's count whatever it holds, up to
-- 2 * burst, for a window script's state fragment (count, reset, save).
local n = tonumber(ARGV[4])

if count < 2 * burst then
  count = math.min(count + n, 2 * burst)
end
save(reset)
return {math.max(burst - count, 0), 0, 0, reset}
