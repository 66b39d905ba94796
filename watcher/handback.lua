#!lua
-- handback.lua: moves events from a taken list back to the input queue, so
-- that they are taken again (by this replica after a restart, or by any
-- other). Two uses: a replica's start replays its own taken list ('all'),
-- and a shutdown hands back the events it could not finish ('these').
--
-- KEYS[1]   the taken list
-- KEYS[2]   the input queue
-- ARGV[1]   'all': move up to ARGV[2] entries, whatever they are, and stop
--           once they add up to ARGV[3] bytes (at least one is moved), so
--           that a call's time is bounded by that budget plus one entry;
--           'these': move each event of ARGV[2..] that is still in the taken
--           list (fenced: an event replayed elsewhere is not moved twice)
-- ARGV[2..] with 'all', the most entries to move; with 'these', the events,
--           oldest first
--
-- Events go to the right end of the input queue, the end workers take
-- from, oldest rightmost: they are taken next, in their original order.
-- Returns the number of events moved; with 'all', {moved, entries left in
-- the taken list}.

local taken, input = KEYS[1], KEYS[2]
local moved = 0
if ARGV[1] == 'all' then
  -- The head of the taken list is the newest event; moving newest first to
  -- the right end leaves the oldest rightmost.
  local budget, bytes = tonumber(ARGV[3]), 0
  for _ = 1, tonumber(ARGV[2]) do
    local e = redis.call('LMOVE', taken, input, 'LEFT', 'RIGHT')
    if not e then
      break
    end
    moved = moved + 1
    bytes = bytes + #e
    if bytes >= budget then
      break
    end
  end
  return {moved, redis.call('LLEN', taken)}
end
for i = #ARGV, 2, -1 do
  if redis.call('LREM', taken, -1, ARGV[i]) == 1 then
    redis.call('RPUSH', input, ARGV[i])
    moved = moved + 1
  end
end
return moved
