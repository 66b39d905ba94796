#!lua
-- handback.lua: gives tasks of a stopping worker back to their queue: each
-- entry leaves the worker's taken list and, only if it was still there, is
-- pushed back to the consuming (right) end of the queue, to be taken
-- next. Entries are given oldest first: the oldest ends rightmost. Safe
-- without a lease: an entry the leader already replayed is not there.
--
-- KEYS[1]  the worker's taken list
-- KEYS[2]  the task queue
-- ARGV     the entries, as taken
--
-- Returns {code, moved}: 1 done; 2 a key has the wrong type (nothing
-- written).

local taken, queue = KEYS[1], KEYS[2]
if not is(taken, 'list') or not is(queue, 'list') then return {2, 0} end
local moved = 0
for i = #ARGV, 1, -1 do
  if redis.call('LREM', taken, 1, ARGV[i]) == 1 then
    redis.call('RPUSH', queue, ARGV[i])
    moved = moved + 1
  end
end
return {1, moved}
