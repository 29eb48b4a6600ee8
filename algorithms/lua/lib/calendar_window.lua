-- The state and time of the calendar window scripts (calendar_window.lua
-- documents them), for the lib/count_*.lua operations. Reads burst from
-- ARGV (rate and period are not used), the time, and the key's window, and
-- defines:
--   s, e         the key's window, while it holds now; else nil
--   count        the tokens spent in that window (0 without one)
--   reset        the time until that window ends (0 without one)
--   pick()       take, when the key holds no window of now, the caller's
--                one (ARGV[5..8]) that holds now; false if none does
--   save(reset)  write the window and its count, to expire reset µs from
--                now
local burst = tonumber(ARGV[3])

-- #include lib/now.lua

local s, e, count, reset = nil, nil, 0, 0
local st = redis.call('HMGET', KEYS[1], 's', 'e', 'c')
if st[1] then
  local ss = tonumber(st[1])
  local se = tonumber(st[2])
  local sc = tonumber(st[3])
  if ss == nil or se == nil or sc == nil then
    return redis.error_reply('ERR ratelimit: corrupt calendar window state at ' .. KEYS[1])
  end
  if ss <= now and now < se then
    s, e, count, reset = ss, se, sc, se - now
  end
end

local function pick()
  if s ~= nil then
    return true
  end
  for i = 5, 7 do
    local a = tonumber(ARGV[i])
    local b = tonumber(ARGV[i + 1])
    if a <= now and now < b then
      s, e, reset = a, b, b - now
      return true
    end
  end
  return false
end

local function save(reset)
  redis.call('HSET', KEYS[1], 's', string.format('%d', s), 'e', string.format('%d', e), 'c', string.format('%d', count))
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
end
