-- calendar_window.lua: count requests in windows that follow a calendar
-- (the days, weeks or months of a time zone) and admit at most burst per
-- window.
--
-- KEYS[1]  a hash {s = window start, e = window end (µs since the Unix
--          epoch), c = tokens spent in [s, e)}
-- ARGV     rate, period_us, burst, n (positive integers); b0, b1, b2, b3:
--          the bounds of three consecutive windows [b0, b1), [b1, b2),
--          [b2, b3), in µs since the Unix epoch, which the caller computed
--          in the calendar's time zone around its own clock
-- returns  {allowed (0|1), remaining, retry_after_us, reset_after_us}, or
--          {2, now_us, 0, 0} when neither the key's window nor any of the
--          three holds now: the caller computes the windows around now_us
--          and runs the script again
--
-- Time is the Redis server's (TIME), in microseconds: it decides the
-- window. Lua in Redis has no time-zone database, so the windows come from
-- the caller. The key's own window, while it holds now, wins over the
-- caller's: every caller counts in the window that the first one of the
-- window wrote, even one with other time-zone rules, and a change of period
-- or zone applies from the end of the current window. A missing key, or one
-- holding an earlier window, counts zero; the key expires when its window
-- ends. A denied request writes nothing, and retries when the window ends.
-- rate and period are not used: a window admits burst. Mirrored by
-- CalendarWindowModel in calendar_model.go.
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local s, e, count = nil, nil, 0
local st = redis.call('HMGET', KEYS[1], 's', 'e', 'c')
if st[1] then
  local ss = tonumber(st[1])
  local se = tonumber(st[2])
  local sc = tonumber(st[3])
  if ss == nil or se == nil or sc == nil then
    return redis.error_reply('ERR ratelimit: corrupt calendar window state at ' .. KEYS[1])
  end
  if ss <= now and now < se then
    s, e, count = ss, se, sc
  end
end
if s == nil then
  for i = 5, 7 do
    local a = tonumber(ARGV[i])
    local b = tonumber(ARGV[i + 1])
    if a <= now and now < b then
      s, e = a, b
      break
    end
  end
  if s == nil then
    return {2, now, 0, 0}
  end
end

local reset = e - now
if count + n > burst then
  local remaining = burst - count
  if remaining < 0 then
    remaining = 0
  end
  return {0, remaining, reset, reset}
end

count = count + n
redis.call('HSET', KEYS[1], 's', string.format('%d', s), 'e', string.format('%d', e), 'c', string.format('%d', count))
redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
return {1, burst - count, 0, reset}
