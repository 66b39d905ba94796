#!lua
-- complete.lua: completes tasks of one worker, each atomically: the task
-- leaves the worker's taken list and, only if it was still there, its done
-- event is pushed, the done event's trace context stored, the task's own
-- trace context and failure count removed. A task that is no longer in the
-- taken list (the leader replayed it: this worker was presumed dead)
-- completes nothing: no done event twice. Nothing is written at all when
-- the worker's fence no longer holds ARGV[1].
--
-- KEYS[1]  the worker's taken list (LIST)
-- KEYS[2]  the worker's fence on the queue (keyspace.WorkerFence: STRING,
--          the registration's token; in the queue's slot)
-- KEYS[3]  the failure counts of the queue (HASH: SHA1 hex of task -> count)
-- KEYS[4]  the done queue (LIST); the taken list when no done event is
--          pushed (then not written)
-- KEYS[3+2i], KEYS[4+2i]  for task i (1-based): its trace context key, and
--          the trace context key of its done event
-- ARGV[1]  the registration token
-- ARGV[2]  the expiry of the done events' trace contexts, ms (>= 1)
-- ARGV[3]  '1' when done events are pushed, '0' when not
-- ARGV[4i..4i+3]  for task i: the entry as taken, the SHA1 hex of the
--          task, the done event, its traceparent ('': the task's own
--          stored trace context, if any, is carried to the done event, as
--          a worker without a tracer does)
--
-- Returns {code, flag...}:
--   1  done, and per task 1 completed or 0 fenced (no longer in the taken
--      list: nothing written for it)
--   0  fenced: the fence is gone or holds another token; nothing written
--   2  the taken list is not a list; nothing written
--   3  the failure counts are not a hash; nothing written
--   4  the done queue is not a list; nothing written
--   5  bad argument; nothing written

local taken, fence, failures, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl, push = tonumber(ARGV[2]), ARGV[3] == '1'
local count = (#ARGV - 3) / 4
if not ttl or ttl < 1 or count ~= math.floor(count) or #KEYS ~= 4 + 2 * count then return {5} end
if type_of(fence) ~= 'string' or redis.call('GET', fence) ~= ARGV[1] then return {0} end
if not is(taken, 'list') then return {2} end
if not is(failures, 'hash') then return {3} end
if push and not is(done, 'list') then return {4} end
local out = {1}
for i = 1, count do
  local a = 4 * i
  local entry, sha, event, tp = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  if redis.call('LREM', taken, 1, entry) == 1 then
    redis.call('HDEL', failures, sha)
    local own = KEYS[3 + 2 * i]
    if tp == '' and type_of(own) == 'string' then
      tp = redis.call('GET', own)
    end
    redis.call('DEL', own)
    if push then
      redis.call('LPUSH', done, event)
      if tp ~= '' then
        redis.call('SET', KEYS[4 + 2 * i], tp, 'PX', ttl)
      end
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
