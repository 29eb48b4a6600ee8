-- token_bucket_take_up_to.lua: take as many tokens as are available, up to n.
-- This is the leasing primitive: a partial grant is a success.
--
-- KEYS[1]  the bucket, as in token_bucket_take.lua
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {granted (0..n), remaining (whole tokens), retry_after_us, reset_after_us}
--          retry_after_us is the time until one token is available when
--          granted is 0, else 0.
--
-- Same bucket and time rules as token_bucket_take.lua; mirrored by
-- TokenBucketModel.TakeUpTo in model.go.
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

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

local granted = math.min(n, math.floor(tokens))
if granted <= 0 then
  local retry = math.ceil((1 - tokens) * period / rate)
  local reset = math.ceil((burst - tokens) * period / rate)
  return {0, math.floor(tokens), retry, reset}
end

tokens = tokens - granted
local reset = math.ceil((burst - tokens) * period / rate)
if reset > 0 then
  redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
else
  redis.call('DEL', KEYS[1])
end
return {granted, math.floor(tokens), 0, reset}
