-- Peek: what a window's count leaves, without spending any of it, for a
-- window script's state fragment (count, reset).
if count == 0 then
  return {1, burst, 0, 0}
end
local remaining = burst - count
if remaining < 1 then
  return {0, 0, reset, reset}
end
return {1, remaining, 0, reset}
