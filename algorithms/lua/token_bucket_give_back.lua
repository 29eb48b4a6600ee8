-- token_bucket_give_back.lua: return n unspent tokens to a bucket, capped at
-- its burst. Used by leasing to hand back tokens it leased but did not serve.
--
-- KEYS[1]  the bucket, as in token_bucket_take.lua
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {remaining (whole tokens, 0 when in debt), 0, 0, reset_after_us}
--
-- Same bucket and time rules as token_bucket_take.lua; mirrored by
-- TokenBucketModel.Refund in model.go.
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local st = redis.call('HMGET', KEYS[1], 't', 'ts')
if not st[1] then
  -- A missing bucket is full: nothing to give back to.
  return {burst, 0, 0, 0}
end
local ts = tonumber(st[2])
local tokens = tonumber(st[1])
if tokens == nil or ts == nil then
  return redis.error_reply('ERR ratelimit: corrupt token bucket state at ' .. KEYS[1])
end
if now > ts then
  tokens = tokens + (now - ts) * rate / period
end
tokens = tokens + n
if tokens > burst then
  tokens = burst
end

local reset = math.ceil((burst - tokens) * period / rate)
if reset > 0 then
  redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
else
  redis.call('DEL', KEYS[1])
end
return {math.max(math.floor(tokens), 0), 0, 0, reset}
