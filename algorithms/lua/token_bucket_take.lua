-- token_bucket_take.lua: take exactly n tokens from a token bucket, or none.
--
-- KEYS[1]  the bucket: a hash {t = tokens (float, "%.17g"), ts = last update, µs}
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {allowed (0|1), remaining (whole tokens, 0 when in debt), retry_after_us,
--          reset_after_us}
--
-- The bucket holds at most burst tokens and gains rate tokens per period,
-- continuously. Time is the Redis server's (TIME), in microseconds. A missing
-- key is a full bucket; the key expires when the bucket would be full again,
-- and is deleted when it is full now. A denied request writes nothing
-- (unless the limit changed: see keep in lib/token_bucket.lua).
-- The maths is mirrored by TokenBucketModel.Decide in model.go.

-- #include lib/token_bucket.lua

local n = tonumber(ARGV[4])

if tokens < n then
  local reset = time_to(burst)
  keep(reset)
  return {0, math.max(math.floor(tokens), 0), time_to(n), reset}
end

tokens = tokens - n
local reset = time_to(burst)
save(reset)
return {1, math.floor(tokens), 0, reset}
