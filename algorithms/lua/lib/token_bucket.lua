-- The state and time of the token bucket scripts (token_bucket_take.lua
-- documents them). Reads rate, period_us and burst from ARGV, the time, and
-- the key's bucket, and defines:
--   stored, ts   the tokens the key held at its last update, and when (µs);
--                nil for a missing key
--   tokens       the tokens the bucket holds now, at most burst (burst for
--                a missing key)
--   time_to(k)   the time until the bucket holds k tokens, rounded up to a
--                µs
--   save(reset)  write the bucket, to expire reset µs from now, or delete
--                it when reset is 0 (it is full)
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])

-- #include lib/now.lua

local tokens, stored, ts = burst, nil, nil
local st = redis.call('HMGET', KEYS[1], 't', 'ts')
if st[1] then
  ts = tonumber(st[2])
  stored = tonumber(st[1])
  if stored == nil or ts == nil then
    return redis.error_reply('ERR ratelimit: corrupt token bucket state at ' .. KEYS[1])
  end
  tokens = stored
  if now > ts then
    tokens = tokens + (now - ts) * rate / period
  end
  if tokens > burst then
    tokens = burst
  end
end

local function time_to(k)
  return math.ceil((k - tokens) * period / rate)
end

local function save(reset)
  if reset > 0 then
    redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%d', now))
    redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
  else
    redis.call('DEL', KEYS[1])
  end
end
