-- Move prelude (internal/script): the one way a consumer takes entries
-- into its private list, used by the watcher's take.lua and the worker
-- SDK's take.lua (docs/workers.md, "take").
--   move(src, dst, want, budget, out, each)
--     pops up to want entries from the consuming (right) end of src and
--     stops once the bytes popped reach budget (at least one is popped).
--     It reads c entries at a time (RPOP with a count), c doubling from 1,
--     at most 64, and never more than the budget left divided by the
--     largest entry seen: with entries alike no read goes past the budget;
--     an entry much larger than those before it can make one read go past
--     it by that read's entries (the first read is a single entry).
--     each(e, n) gives what stands in dst for the n-th entry e popped (e
--     itself, or a short entry for an event set aside). The entries are
--     appended to out, oldest first, and pushed to the head of dst, which
--     then starts with the newest, as that many RPOPLPUSH would leave it.
--     Returns how many were moved. Nothing may fail once an entry is
--     popped: the caller checks dst's type, and what each writes, first.
local function move(src, dst, want, budget, out, each)
  local first, bytes, n, c, largest = #out + 1, 0, 0, 1, 1
  while n < want and bytes < budget do
    local es = redis.call('RPOP', src, math.min(c, want - n))
    if not es then
      break
    end
    for _, e in ipairs(es) do
      n = n + 1
      bytes = bytes + #e
      largest = math.max(largest, #e)
      out[#out + 1] = each(e, n)
    end
    c = math.max(1, math.min(2 * c, 64, math.floor((budget - bytes) / largest)))
  end
  -- unpack is bounded by Lua's stack: push in chunks.
  local last, chunk = #out, 1000
  for i = first, last, chunk do
    redis.call('LPUSH', dst, unpack(out, i, math.min(i + chunk - 1, last)))
  end
  return n
end
