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
--   keep(reset)  make a key left as it is last until it is full, reset µs
--                from now
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

-- expire sets the key's TTL to reset µs, rounded up to a whole ms.
local function expire(reset)
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
end

local function save(reset)
  if reset > 0 then
    redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%d', now))
    expire(reset)
  else
    redis.call('DEL', KEYS[1])
  end
end

-- A write sets the TTL for the limit it was made under. Under a lower rate
-- or a larger burst the bucket is full later, and a key that expired
-- before that would come back as a full bucket: a fresh burst for a client
-- that was just denied. keep extends the TTL of a key that the script
-- leaves as it is (a denial) to reset µs from now, when it ends sooner.
-- PTTL counts whole ms, and a key lives at least ttl ms more, so only a
-- TTL over a ms short is extended: a write under the same limit never
-- leaves one, and a denial under an unchanged limit writes nothing.
local function keep(reset)
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl >= 0 and (ttl + 1) * 1000 < reset then
    expire(reset)
  end
end
