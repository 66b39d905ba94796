#!lua
-- handback.lua: moves entries from a taken list back to the consuming
-- (right) end of their queue, so that they are taken again (by the same
-- consumer after a restart, or by any other). Used by the watcher (input
-- queues) and by the worker SDK (task queues) alike. Two modes:
--
--   'all'    a replica's start replays its own taken list: move up to
--            ARGV[2] entries, whatever they are, newest first, and stop
--            once they add up to ARGV[3] bytes (at least one is moved), so
--            that a call's time is bounded by that budget plus one entry
--   'these'  a shutdown hands back what it could not finish: move each
--            entry of ARGV[2..] (oldest first) that is still in the taken
--            list (fenced: an entry the leader already replayed is not
--            there, and is not moved twice)
--
-- Either way the oldest entry ends rightmost in the queue: taken next, the
-- entries in their original order. Redis does not roll back a script: the
-- type of both keys is checked before anything moves.
--
-- KEYS[1]   the taken list (LIST)
-- KEYS[2]   the queue (LIST)
-- ARGV[1]   'all' or 'these'
-- ARGV[2..] 'all': the most entries to move (>= 1), the byte budget;
--           'these': the entries, oldest first
--
-- Returns {code, moved, left}, left being the length of the taken list
-- after the call:
--   1  done
--   2  the taken list is not a list; nothing moved
--   3  the queue is not a list; nothing moved
--   4  bad argument; nothing moved

local taken, queue, mode = KEYS[1], KEYS[2], ARGV[1]
if mode ~= 'all' and mode ~= 'these' then return {4, 0, 0} end
local most, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
if mode == 'all' and not (most and budget and most >= 1) then return {4, 0, 0} end
if not is(taken, 'list') then return {2, 0, 0} end
if not is(queue, 'list') then return {3, 0, 0} end
local moved = 0
if mode == 'all' then
  -- The head of the taken list is the newest entry: moving newest first
  -- to the right end leaves the oldest rightmost.
  local bytes = 0
  for _ = 1, most do
    local e = redis.call('LMOVE', taken, queue, 'LEFT', 'RIGHT')
    if not e then break end
    moved = moved + 1
    bytes = bytes + #e
    if bytes >= budget then break end
  end
else
  for i = #ARGV, 2, -1 do
    if redis.call('LREM', taken, -1, ARGV[i]) == 1 then
      redis.call('RPUSH', queue, ARGV[i])
      moved = moved + 1
    end
  end
end
return {1, moved, redis.call('LLEN', taken)}
