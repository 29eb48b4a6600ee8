-- token_bucket_charge.lua: take n tokens from a token bucket whatever it
-- holds: the cost of an admitted request beyond what it reserved, which may
-- put the bucket into debt that later requests pay off.
--
-- KEYS[1]  the bucket, as in token_bucket_take.lua
-- ARGV     rate, period_us, burst, n (positive integers, n <= 2 * burst)
-- returns  {remaining (whole tokens, 0 when in debt), 0, 0, reset_after_us}
--
-- The bucket goes down by n, but not below -burst: a debt of at most one
-- burst, which refills in at most twice the burst's refill time. A charge
-- never raises a bucket already lower (after its burst was lowered). Unlike
-- the charge of token_bucket_take_up_to.lua (tokens a fallback spent without
-- Redis), a missing key is charged: it is a full bucket, and charging it is
-- never more lenient than charging the request when it was admitted. Same
-- bucket and time rules as token_bucket_take.lua; mirrored by
-- TokenBucketModel.Charge in model_quota.go.

-- #include lib/token_bucket.lua

local n = tonumber(ARGV[4])

tokens = math.max(tokens - n, math.min(tokens, -burst))
local reset = time_to(burst)
save(reset)
return {math.max(math.floor(tokens), 0), 0, 0, reset}
