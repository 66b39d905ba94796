#!lua
-- take.lua: takes up to ARGV[1] events in one round trip, without blocking.
-- Each event moves atomically from the input queue (its right end, where
-- the oldest event is) to the head of this replica's taken list, as
-- BRPOPLPUSH and BLMOVE RIGHT LEFT do.
--
-- KEYS[1]  the input queue
-- KEYS[2]  this replica's taken list
-- ARGV[1]  the most events to take
--
-- Returns the events taken, oldest first; empty when the queue is empty.

local out = {}
for i = 1, tonumber(ARGV[1]) do
  local e = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not e then
    break
  end
  out[i] = e
end
return out
