-- token_bucket_take_up_to.lua: take as many tokens as are available, up to n,
-- after charging tokens that were spent without Redis.
-- This is the leasing primitive: a partial grant is a success.
--
-- KEYS[1]  the bucket, as in token_bucket_take.lua
-- ARGV     rate, period_us, burst, n (positive integers);
--          optional charge, ahead, since_us (non-negative integers,
--          default 0), hint (an integer, default -1) and short (a
--          non-negative integer, default 0)
-- returns  {granted (0..n), remaining (whole tokens, 0 when in debt),
--          retry_after_us, reset_after_us}
--          retry_after_us is the time until one token is available when
--          granted is 0; 0 for a grant of tokens available now; for a
--          grant ahead, the time until its first token is earned.
--
-- A grant ahead: when the bucket holds less than one whole token, up to
-- ahead tokens not yet earned may be granted, in debt, down to -ahead.
-- They are earned one every period/rate from retry_after_us on, and the
-- caller must not serve any of them earlier: measured from when the reply
-- arrives, that is never before Redis earned it. Granting ahead lets a key
-- whose bucket is empty lease a share of its refill rate in one call
-- instead of one token per call.
--
-- A long lease (short > 0): n is what the caller would like, short what it
-- needs. Up to short tokens are granted as for any take; more, up to n,
-- only from a bucket at least a quarter full, and at most half of what it
-- holds. The bucket decides from its level now, not from what a caller saw
-- at its last call.
--
-- A charge is a count of tokens that a fallback admitted while Redis could
-- not be asked, over the last since_us. They are spent as if taken as they
-- were earned: what the bucket earned over since_us is not capped at the
-- burst before the charge is paid, and the bucket may go into debt, down to
-- -burst, for later requests to pay off. A missing key lost its state (a
-- restart, a flush) or expired: with a hint (what the caller last saw the
-- bucket hold before the fallback began; -1 for none) it is rebuilt as
-- holding hint + what it earned over since_us, so that a restart does not
-- hand out a fresh burst on top of what the fallbacks admitted; without
-- one it is a full bucket and nothing is charged. A state with a charge is
-- written even when nothing is granted.
--
-- Same bucket and time rules as token_bucket_take.lua; mirrored by
-- TokenBucketModel.ChargeTakeUpTo in charge.go.

-- #include lib/token_bucket.lua

local n = tonumber(ARGV[4])
local charge = tonumber(ARGV[5] or '0')
local ahead = tonumber(ARGV[6] or '0')
local since = tonumber(ARGV[7] or '0')
local hint = tonumber(ARGV[8] or '-1')
local short = tonumber(ARGV[9] or '0')

if ts ~= nil then
  if charge > 0 then
    -- Earned before the fallback began: capped; since then: not, for the
    -- fallback spent it as it came.
    local t0 = math.max(ts, now - since)
    tokens = stored
    if t0 > ts then
      tokens = math.min(tokens + (t0 - ts) * rate / period, burst)
    end
    if now > t0 then
      tokens = tokens + (now - t0) * rate / period
    end
  end
elseif charge > 0 and hint >= 0 then
  tokens = hint + since * rate / period
else
  charge = 0 -- lost or expired full, and nothing to rebuild it from
end
if charge > 0 then
  tokens = math.max(tokens - charge, -burst)
end
if tokens > burst then
  tokens = burst
end
if short > 0 then
  local long = 0
  if 4 * tokens >= burst then
    long = math.floor(tokens / 2)
  end
  n = math.min(n, math.max(short, long))
end

local granted = math.min(n, math.floor(tokens))
local due = 0
if granted < 1 and ahead > 0 then
  granted = math.min(n, math.floor(tokens + ahead))
  if granted > 0 then
    due = time_to(1)
  end
end
if granted < 0 then
  granted = 0
end
tokens = tokens - granted
local reset = time_to(burst)
if granted > 0 or charge > 0 then
  save(reset)
elseif ts ~= nil then
  keep(reset)
end
local retry = due
if granted == 0 then
  if ahead > 0 then
    retry = time_to(1 - ahead)
  else
    retry = time_to(1)
  end
end
return {granted, math.max(math.floor(tokens), 0), retry, reset}
