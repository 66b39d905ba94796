#!lua
-- take.lua: takes tasks into this worker's taken list, only while the
-- worker's fence on the queue holds ARGV[1] (a worker whose lease was
-- lost takes nothing). Each task taken leaves the dedup set, when one is
-- given, in the same script (resc's protocol: a worker removes the task
-- from the set when it takes it), and comes back with its failure count.
-- Two modes:
--
--   'take'   moves up to ARGV[3] tasks from the consuming (right) end of
--            the queue to the head of the taken list, as RPOPLPUSH does
--            one by one, and stops once they add up to ARGV[4] bytes (at
--            least one is moved): the Move prelude, the watcher's take too
--   'moved'  a blocking take (BLMOVE queue taken RIGHT LEFT, which cannot
--            check the fence) has just moved the entry ARGV[3]: finish its
--            take (the dedup set, the failure count, its trace context
--            KEYS[6]). Fenced, nothing is written: the entry stays in the
--            taken list, which the next lease (or the leader) replays.
--
-- Entries keep the crash replay stamp they may carry ("\0resc:replays=<n>\0"
-- before the task, written by the leader's replay); the dedup set member,
-- the failure count's field and the trace context key are the bare task's.
--
-- KEYS[1]  the task queue (LIST)
-- KEYS[2]  the worker's taken list "<queue>/taken/<worker-id>" (LIST)
-- KEYS[3]  the worker's fence on the queue (keyspace.WorkerFence: STRING,
--          the registration's token; in the queue's slot)
-- KEYS[4]  the failure counts of the queue (HASH: SHA1 hex of task -> count)
-- KEYS[5]  the dedup set of the queue (ZSET); the queue itself when none
--          (then not written)
-- KEYS[6]  'moved': the trace context key of the task (STRING,
--          keyspace.TraceContext(prefix, queue, task))
-- ARGV[1]  the registration token
-- ARGV[2]  'take' or 'moved'
-- ARGV[3]  'take': the most tasks to move, >= 1; 'moved': the entry
-- ARGV[4]  'take': the byte budget (consumer.ScriptBudget)
--
-- Returns {code, ...}, all strings (the code too, so that the reply reads
-- straight into strings):
--   1  done: 'take' {1, entry, failures, ...} per task moved, newest
--      last (the order to start them in), failures '0' for none;
--      'moved' {1, entry, failures, traceparent} ('' for none)
--   0  fenced: the fence is gone or holds another token; nothing written
--   2  the queue is not a list; nothing written
--   3  the taken list is not a list; nothing written
--   4  the failure counts are not a hash; nothing written
--   5  the dedup set is not a sorted set; nothing written
--   6  bad argument; nothing written

local queue, taken, fence, failures, set = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local mode = ARGV[2]
local n, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
if #KEYS < 5 or (mode == 'take' and not (n and n >= 1 and budget)) or (mode == 'moved' and #KEYS < 6)
    or (mode ~= 'take' and mode ~= 'moved') then
  return {'6'}
end
local dedup = set ~= queue
if type_of(fence) ~= 'string' or redis.call('GET', fence) ~= ARGV[1] then return {'0'} end
if not is(queue, 'list') then return {'2'} end
if not is(taken, 'list') then return {'3'} end
if not is(failures, 'hash') then return {'4'} end
if dedup and not is(set, 'zset') then return {'5'} end

-- took finishes the take of entry: out of the dedup set, its failure
-- count appended to out.
local out = {'1'}
local function took(entry)
  local task = unstamp(entry)
  if dedup then
    redis.call('ZREM', set, task)
  end
  out[#out + 1] = entry
  out[#out + 1] = redis.call('HGET', failures, redis.sha1hex(task)) or '0'
end

if mode == 'moved' then
  took(ARGV[3])
  out[#out + 1] = type_of(KEYS[6]) == 'string' and redis.call('GET', KEYS[6]) or ''
  return out
end
-- move (the Move prelude, the watcher's take too) moves them within the
-- byte budget, oldest first, as that many RPOPLPUSH would.
local moved = {}
move(queue, taken, n, budget, moved, function(e) return e end)
for _, entry in ipairs(moved) do
  took(entry)
end
return out
