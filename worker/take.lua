#!lua
-- take.lua: moves up to ARGV[2] tasks from the consuming (right) end of a
-- task queue to the head of this worker's taken list, as RPOPLPUSH does
-- one by one, only while the worker's registration holds ARGV[1]: a
-- worker whose lease was lost takes nothing. Each task taken leaves the
-- dedup set KEYS[4], when given, in the same step (resc's protocol: a
-- worker removes the task from the set when it takes it).
--
-- Entries keep the crash replay stamp they may carry ("\0resc:replays=<n>\0"
-- before the task, written by the leader's replay); the set member is the
-- bare task.
--
-- KEYS[1]  the task queue
-- KEYS[2]  the worker's taken list "<queue>/taken/<worker-id>"
-- KEYS[3]  the worker's registration key (STRING: its token)
-- KEYS[4]  optional: the dedup set of the queue (ZSET)
-- ARGV[1]  the registration token
-- ARGV[2]  the most tasks to move, >= 1
-- ARGV[3]  the byte budget: the call stops once the tasks it moved add up
--          to this many bytes (at least one is moved)
--
-- Returns {code, entry...}, the code a string:
--   1  done: the entries moved, newest last (the order to start them in)
--   0  nothing moved: the registration is gone or holds another token
--   2  the queue is not a list; nothing moved
--   3  the taken list is not a list; nothing moved
--   4  the dedup set is not a sorted set; nothing moved
--   5  bad argument; nothing moved

local queue, taken, reg, set = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local n, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
if not n or n < 1 or not budget then return {'5'} end
if type_of(reg) ~= 'string' or redis.call('GET', reg) ~= ARGV[1] then return {'0'} end
if not is(queue, 'list') then return {'2'} end
if not is(taken, 'list') then return {'3'} end
if set and not is(set, 'zset') then return {'4'} end
local out, bytes = {'1'}, 0
for _ = 1, n do
  if bytes >= budget then break end
  local entry = redis.call('RPOPLPUSH', queue, taken)
  if not entry then break end
  bytes = bytes + #entry
  if set then
    redis.call('ZREM', set, (unstamp(entry)))
  end
  out[#out + 1] = entry
end
return out
