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
-- and is deleted when it is full now. A denied request writes nothing.
-- The maths is mirrored by TokenBucketModel.Decide in model.go.
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

if tokens < n then
  local retry = math.ceil((n - tokens) * period / rate)
  local reset = math.ceil((burst - tokens) * period / rate)
  return {0, math.max(math.floor(tokens), 0), retry, reset}
end

tokens = tokens - n
local reset = math.ceil((burst - tokens) * period / rate)
if reset > 0 then
  redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
else
  redis.call('DEL', KEYS[1])
end
return {1, math.floor(tokens), 0, reset}
