-- token_bucket_peek.lua: what a token bucket holds now, without taking any.
--
-- KEYS[1]  the bucket, as in token_bucket_take.lua
-- ARGV     rate, period_us, burst (positive integers); n is not used
-- returns  {available (0|1: one token is), remaining (whole tokens, 0 when
--          in debt), retry_after_us (until one token is, 0 if available),
--          reset_after_us (until the bucket is full)}
--
-- Same bucket and time rules as token_bucket_take.lua; the reply is what
-- that script would reply to a request for one token, but with the tokens
-- before it, and the script writes nothing. Mirrored by
-- TokenBucketModel.Peek in model_quota.go.

-- #include lib/token_bucket.lua

local reset = time_to(burst)
if tokens < 1 then
  return {0, math.max(math.floor(tokens), 0), time_to(1), reset}
end
return {1, math.floor(tokens), 0, reset}
