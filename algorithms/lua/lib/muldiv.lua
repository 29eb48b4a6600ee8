-- Exact arithmetic, for the GCRA and sliding window scripts. Lua's numbers
-- are float64, which hold whole numbers exactly below 2^53; a product of
-- two valid quantities (a burst and a period in µs, a time and a rate) can
-- exceed that, so muldiv computes it in parts, every one a whole number
-- below 2^53.

-- divmod returns q = floor(x / m) and r = x - q * m, for whole numbers x and
-- m > 0 with |x| + m <= 2^53. The float division may round q up by one; the
-- remainder then shows it, and is corrected.
local function divmod(x, m)
  local q = math.floor(x / m)
  local r = x - q * m
  if r < 0 then
    q, r = q - 1, r + m
  elseif r >= m then
    q, r = q + 1, r - m
  end
  return q, r
end

-- muldiv returns q = floor(a * b / m) and r = a * b - q * m, exactly, for
-- whole numbers 0 <= a, b <= 2^52 and 0 < m < 2^45 such that q < 2^53.
local function muldiv(a, b, m)
  local p = a * b
  if p <= 2^52 then
    return divmod(p, m)
  end
  -- a * b = (aq * b + ar * bq) * m + ar * br, where ar, br < m.
  local aq, ar = divmod(a, m)
  local bq, br = divmod(b, m)
  -- ar * br = h * m + r, by long multiplication in the seven 7-bit digits
  -- of ar (ar < 2^45), most significant first: r * 128 + digit * br stays
  -- below 2^8 * m < 2^53.
  local h, r = 0, 0
  for shift = 42, 0, -7 do
    local dq, dr = divmod(r * 128 + math.floor(ar / 2^shift) % 128 * br, m)
    h, r = h * 128 + dq, dr
  end
  return aq * b + ar * bq + h, r
end
