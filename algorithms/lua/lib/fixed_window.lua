-- The state and time of the fixed window scripts (fixed_window.lua
-- documents them), for the lib/count_*.lua operations. Reads period_us and
-- burst from ARGV (rate is not used), the time, and the key's window, and
-- defines:
--   count        the tokens spent in the current window
--   reset        the time until the current window ends
--   save(reset)  write the count, to expire reset µs from now
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])

-- #include lib/now.lua

local window = math.floor(now / period)
local reset = period - (now - window * period)

local count = 0
local st = redis.call('HMGET', KEYS[1], 'w', 'c')
if st[1] then
  local w = tonumber(st[1])
  local c = tonumber(st[2])
  if w == nil or c == nil then
    return redis.error_reply('ERR ratelimit: corrupt fixed window state at ' .. KEYS[1])
  end
  if w == window then
    count = c
  end
end

local function save(reset)
  redis.call('HSET', KEYS[1], 'w', string.format('%d', window), 'c', string.format('%d', count))
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
end
