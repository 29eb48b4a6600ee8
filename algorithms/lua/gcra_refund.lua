-- gcra_refund.lua: give back n tokens to a GCRA key by moving its theoretical
-- arrival time n emission intervals earlier, but not before now (so the key
-- never exceeds its burst).
--
-- KEYS[1]  the TAT, as in gcra.lua
-- ARGV     rate, period_us, burst, n (positive integers)
-- returns  {remaining, 0, 0, reset_after_us}
--
-- Same state and time rules as gcra.lua. The key is deleted when the bucket
-- is full. Mirrored by GCRAModel.Refund in model.go.
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local ahead = 0
local st = redis.call('HMGET', KEYS[1], 't', 'f')
if st[1] then
  local tat = tonumber(st[1])
  local frac = tonumber(st[2])
  if tat == nil or frac == nil then
    return redis.error_reply('ERR ratelimit: corrupt gcra state at ' .. KEYS[1])
  end
  ahead = (tat - now) * rate + frac
  if ahead < 0 then
    ahead = 0
  end
end

local limit = burst * period
local after = ahead - n * period
if after < 0 then
  after = 0
end
local remaining = math.floor((limit - after) / period)
if remaining < 0 then
  remaining = 0
end
local reset = math.ceil(after / rate)
if reset > 0 then
  local whole = math.floor(after / rate)
  redis.call('HSET', KEYS[1], 't', string.format('%d', now + whole), 'f', string.format('%d', after - whole * rate))
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000))
else
  redis.call('DEL', KEYS[1])
end
return {remaining, 0, 0, reset}
