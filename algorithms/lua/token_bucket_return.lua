-- token_bucket_return.lua: return n unspent tokens to a bucket, capped at
-- its burst. Used by leasing to hand back tokens it leased but did not serve.
--
-- KEYS[1]  the bucket, as in token_bucket_take.lua
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {remaining (whole tokens, 0 when in debt), 0, 0, reset_after_us}
--
-- Same bucket and time rules as token_bucket_take.lua; mirrored by
-- TokenBucketModel.Refund in model.go.

-- #include lib/token_bucket.lua

local n = tonumber(ARGV[4])

if ts == nil then
  -- A missing bucket is full: nothing to return to.
  return {burst, 0, 0, 0}
end
tokens = math.min(tokens + n, burst)
local reset = time_to(burst)
save(reset)
return {math.max(math.floor(tokens), 0), 0, 0, reset}
