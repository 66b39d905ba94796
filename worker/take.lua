#!lua
-- take.lua: moves up to ARGV[2] tasks from the consuming (right) end of a
-- task queue to the head of this worker's taken list, as RPOPLPUSH does
-- one by one, only while the worker's fence on the queue holds ARGV[1]: a
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
-- KEYS[3]  the worker's fence on the queue (keyspace.WorkerFence: STRING, the
--          registration's token; in the queue's slot)
-- KEYS[4]  the failure counts of the queue (HASH: SHA1 of task -> count)
-- KEYS[5]  optional: the dedup set of the queue (ZSET)
-- ARGV[1]  the registration token
-- ARGV[2]  the most tasks to move, >= 1
-- ARGV[3]  the byte budget: the call stops once the tasks it moved add up
--          to this many bytes (at least one is moved)
-- ARGV[4]  the name of the trace context keys of the queue's tasks less
--          the task, keyspace.TraceContext(prefix, queue, ""): the one
--          key this script names itself, since it depends on the task
--          popped (on Redis Cluster it must hash to the queue's slot)
--
-- Returns {code, entry, traceparent, failures, ...}, all strings:
--   1  done: per task moved, newest last (the order to start them in),
--      the entry, its stored traceparent ('' for none) and its failure
--      count ('0' for none)
--   0  nothing moved: the fence is gone or holds another token
--   2  the queue is not a list; nothing moved
--   3  the taken list is not a list; nothing moved
--   4  the dedup set is not a sorted set; nothing moved
--   6  the failure counts are not a hash; nothing moved
--   5  bad argument; nothing moved

local queue, taken, reg, failures, set = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local n, budget, trace = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if not n or n < 1 or not budget or not trace then return {'5'} end
if type_of(reg) ~= 'string' or redis.call('GET', reg) ~= ARGV[1] then return {'0'} end
if not is(queue, 'list') then return {'2'} end
if not is(taken, 'list') then return {'3'} end
if set and not is(set, 'zset') then return {'4'} end
if not is(failures, 'hash') then return {'6'} end
local out, bytes = {'1'}, 0
for _ = 1, n do
  if bytes >= budget then break end
  local entry = redis.call('RPOPLPUSH', queue, taken)
  if not entry then break end
  bytes = bytes + #entry
  local task = unstamp(entry)
  if set then
    redis.call('ZREM', set, task)
  end
  local tk = trace .. task
  local tp = type_of(tk) == 'string' and redis.call('GET', tk) or ''
  local sha = redis.sha1hex(task)
  out[#out + 1] = entry
  out[#out + 1] = tp
  out[#out + 1] = redis.call('HGET', failures, sha) or '0'
end
return out
