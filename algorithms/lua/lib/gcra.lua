-- The state, time and arithmetic of the GCRA scripts (gcra.lua documents
-- the state). Reads rate, period_us and burst from ARGV, the time, and the
-- key's TAT, and defines:
--   us, ticks         how far the TAT is ahead of now (0, 0: the bucket is
--                     full)
--   span(k)           k emission intervals
--   limit_us, limit_ticks  burst intervals: how far ahead the TAT may go
--                     for a request to be admitted
--   add, sub, beyond, ceil  the arithmetic of times
--   left(us, ticks)   the whole tokens left with the TAT that far ahead
--   save(us, ticks, reset)  write the TAT
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])

-- #include lib/muldiv.lua

-- #include lib/now.lua

-- A time is a pair: whole µs and a remainder of 0 to rate - 1 ticks.
-- span returns k emission intervals, k * period / rate µs.
local iq, ir = divmod(period, rate)
local function span(k)
  local q, r = muldiv(k, ir, rate)
  return k * iq + q, r
end
local limit_us, limit_ticks = span(burst)

-- add returns the time a + b.
local function add(a_us, a_ticks, b_us, b_ticks)
  local us, ticks = a_us + b_us, a_ticks + b_ticks
  if ticks >= rate then
    us, ticks = us + 1, ticks - rate
  end
  return us, ticks
end

-- sub returns the time a - b, negative when b is after a.
local function sub(a_us, a_ticks, b_us, b_ticks)
  local us, ticks = a_us - b_us, a_ticks - b_ticks
  if ticks < 0 then
    us, ticks = us - 1, ticks + rate
  end
  return us, ticks
end

-- beyond reports whether the time a is after the time b.
local function beyond(a_us, a_ticks, b_us, b_ticks)
  return a_us > b_us or a_us == b_us and a_ticks > b_ticks
end

-- ceil returns a time rounded up to a whole µs.
local function ceil(us, ticks)
  if ticks > 0 then
    return us + 1
  end
  return us
end

-- left returns the whole tokens left when the TAT is us, ticks ahead of
-- now: floor((limit - ahead) / interval), at least 0.
local function left(us, ticks)
  local dus, dticks = sub(limit_us, limit_ticks, us, ticks)
  if dus < 0 then
    return 0
  end
  local q, r = muldiv(dus, rate, period)
  return q + divmod(r + dticks, period)
end

-- save writes the TAT us, ticks ahead of now, to expire reset µs from now
-- (when the bucket is full again), or deletes the key when reset is 0.
local function save(us, ticks, reset)
  if reset > 0 then
    redis.call('HSET', KEYS[1], 't', string.format('%d', now + us), 'f', string.format('%d', ticks))
    redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
  else
    redis.call('DEL', KEYS[1])
  end
end

local us, ticks = 0, 0
local st = redis.call('HMGET', KEYS[1], 't', 'f')
if st[1] then
  local tat = tonumber(st[1])
  local frac = tonumber(st[2])
  if tat == nil or frac == nil then
    return redis.error_reply('ERR ratelimit: corrupt gcra state at ' .. KEYS[1])
  end
  local carry
  carry, ticks = divmod(frac, rate) -- frac >= rate after a change of rate
  us = tat - now + carry
  if us < 0 then
    us, ticks = 0, 0
  end
end
