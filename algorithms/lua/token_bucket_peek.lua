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
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local tokens = burst
local st = redis.call('HMGET', KEYS[1], 't', 'ts')
if st[1] then
  local ts = tonumber(st[2])
  tokens = tonumber(st[1])
  if tokens == nil or ts == nil then
    return redis.error_reply('ERR ratelimit: corrupt token bucket state at ' .. KEYS[1])
  end
  if now > ts then
    tokens = tokens + (now - ts) * rate / period
  end
  if tokens > burst then
    tokens = burst
  end
end

local reset = math.ceil((burst - tokens) * period / rate)
if tokens < 1 then
  local retry = math.ceil((1 - tokens) * period / rate)
  return {0, math.max(math.floor(tokens), 0), retry, reset}
end
return {1, math.floor(tokens), 0, reset}
