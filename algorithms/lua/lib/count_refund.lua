-- Refund: take n tokens off a window's count, but not below 0, deleting the
-- key at 0, for a window script's state fragment (count, reset, save).
local n = tonumber(ARGV[4])

count = math.max(count - n, 0)
local remaining = math.max(burst - count, 0)
if count > 0 then
  save(reset)
else
  redis.call('DEL', KEYS[1])
  reset = 0
end
return {remaining, 0, 0, reset}
