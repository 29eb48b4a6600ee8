-- The state, time and estimate of the sliding window scripts
-- (sliding_window.lua documents them). Reads period_us and burst from ARGV
-- (rate is not used), the time, and the key's windows, and defines:
--   window, elapsed  the current window's number, and how far now is into it
--   cur, prev        the tokens spent in the current and the previous window
--   share            the previous window's share of the estimate, rounded
--                    up to a whole token
--   wait(k)          the time until k tokens fit under the estimate
--   zero_after()     the time until the estimate is zero
--   save(reset)      write the windows
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])

-- #include lib/muldiv.lua

-- #include lib/now.lua

local window, elapsed = divmod(now, period)

local cur, prev = 0, 0
local st = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
if st[1] then
  local w = tonumber(st[1])
  local c = tonumber(st[2])
  local p = tonumber(st[3])
  if w == nil or c == nil or p == nil then
    return redis.error_reply('ERR ratelimit: corrupt sliding window state at ' .. KEYS[1])
  end
  if w == window then
    cur, prev = c, p
  elseif w == window - 1 then
    prev = c
  end
end

local share, rest = muldiv(prev, period - elapsed, period)
if rest > 0 then
  share = share + 1
end

-- wait returns the time until k tokens fit under the estimate, for k more
-- than fit now.
local function wait(k)
  if cur + k <= burst then
    -- prev decays within this window (or just at its end): wait until
    -- prev * (period - e) <= (burst - k - cur) * period. prev > 0 here.
    return period - muldiv(burst - k - cur, period, prev) - elapsed
  end
  -- cur becomes the previous window: wait in the next window until
  -- cur * (period - e) <= (burst - k) * period. cur > 0 here.
  return 2 * period - muldiv(burst - k, period, cur) - elapsed
end

-- zero_after returns the time until the estimate is zero: the end of the
-- next window while the current one has a count, else the end of this one
-- while the previous one has.
local function zero_after()
  if cur > 0 then
    return 2 * period - elapsed
  elseif prev > 0 then
    return period - elapsed
  end
  return 0
end

-- save writes the windows, to expire reset µs from now, or deletes the key
-- when reset is 0.
local function save(reset)
  if reset > 0 then
    redis.call('HSET', KEYS[1], 'w', string.format('%d', window), 'c', string.format('%d', cur), 'p', string.format('%d', prev))
    redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
  else
    redis.call('DEL', KEYS[1])
  end
end
