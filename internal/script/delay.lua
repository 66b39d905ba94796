-- Delay prelude (internal/script): the one computation of a retry or
-- replay delay, for every script that schedules an entry again.
--   delay_ms(first, longest, k)  first * 2^k ms, at most longest: the
--                                delay after k doublings (k >= 0)
local function delay_ms(first, longest, k)
  if k < 0 then k = 0 end
  return math.min(first * 2 ^ k, longest)
end
