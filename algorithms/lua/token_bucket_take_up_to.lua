-- token_bucket_take_up_to.lua: take as many tokens as are available, up to n,
-- after charging tokens that were spent without Redis.
-- This is the leasing primitive: a partial grant is a success.
--
-- KEYS[1]  the bucket, as in token_bucket_take.lua
-- ARGV     rate, period_us, burst, n (positive integers);
--          optional charge, window_us (non-negative integers, default 0)
-- returns  {granted (0..n), remaining (whole tokens, 0 when in debt),
--          retry_after_us, reset_after_us}
--          retry_after_us is the time until one token is available when
--          granted is 0, else 0.
--
-- A charge is a count of tokens that a fallback admitted over the last
-- window_us while Redis could not be asked. They are spent as if taken as
-- they were earned: the earnings of that window are not capped at the burst
-- before the charge is paid (a missing key counts as empty at the start of
-- the window), and the bucket may go into debt, down to -burst. A state with
-- a charge is written even when nothing is granted.
--
-- Same bucket and time rules as token_bucket_take.lua; mirrored by
-- TokenBucketModel.ChargeTakeUpTo in charge.go.
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local charge = tonumber(ARGV[5] or '0')
local window = tonumber(ARGV[6] or '0')

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
  if charge > 0 then
    local t0 = math.max(ts, now - window)
    if t0 > ts then
      tokens = math.min(tokens + (t0 - ts) * rate / period, burst)
    end
    if now > t0 then
      tokens = tokens + (now - t0) * rate / period
    end
  elseif now > ts then
    tokens = tokens + (now - ts) * rate / period
  end
elseif charge > 0 then
  tokens = window * rate / period
end
if charge > 0 then
  tokens = math.max(tokens - charge, -burst)
end
if tokens > burst then
  tokens = burst
end

local granted = math.min(n, math.floor(tokens))
if granted < 0 then
  granted = 0
end
tokens = tokens - granted
local reset = math.ceil((burst - tokens) * period / rate)
if granted > 0 or charge > 0 then
  if reset > 0 then
    redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%d', now))
    redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
  else
    redis.call('DEL', KEYS[1])
  end
end
local retry = 0
if granted == 0 then
  retry = math.ceil((1 - tokens) * period / rate)
end
return {granted, math.max(math.floor(tokens), 0), retry, reset}
