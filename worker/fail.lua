#!lua
-- fail.lua: records a failed attempt of a task, atomically, only if the
-- task is still in the worker's taken list and the worker's fence
-- holds ARGV[1]. The task leaves the taken list for exactly one of:
--   'retry'  the delay schedule of its queue (member "<tag>:<entry>", due
--            at ARGV[6]), its failure count set to ARGV[5]; the leader's
--            (and every worker's) promotion pushes it back when due
--   'dead'   the dead-letter list "<queue>/dead" (ARGV[8], a JSON entry),
--            its failure count and trace context removed
--
-- KEYS[1]  the worker's taken list
-- KEYS[2]  the worker's fence on the queue (keyspace.WorkerFence: STRING, the
--          registration's token; in the queue's slot)
-- KEYS[3]  the failure counts of the queue (HASH)
-- KEYS[4]  the delay schedule of the queue (ZSET)
-- KEYS[5]  the dead-letter list of the queue
-- KEYS[6]  the task's trace context key
-- ARGV[1]  the registration token
-- ARGV[2]  the entry as taken
-- ARGV[3]  the SHA1 hex of the task
-- ARGV[4]  'retry' or 'dead'
-- ARGV[5]  the failure count to keep ('retry')
-- ARGV[6]  the due time, Unix ms ('retry')
-- ARGV[7]  the member's tag, unique, without ':' ('retry')
-- ARGV[8]  the dead-letter entry ('dead')
--
-- Returns 1 done, 0 nothing written (fenced: the fence is lost or
-- the task is no longer in the taken list), 2 a key has the wrong type
-- (nothing written), 3 bad argument.

local taken, reg, failures, sched, dead, trace = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local entry, sha, mode = ARGV[2], ARGV[3], ARGV[4]
if mode ~= 'retry' and mode ~= 'dead' then return 3 end
if mode == 'retry' and not (tonumber(ARGV[5]) and tonumber(ARGV[6])) then return 3 end
if type_of(reg) ~= 'string' or redis.call('GET', reg) ~= ARGV[1] then return 0 end
if not is(taken, 'list') or not is(failures, 'hash') or not is(sched, 'zset') or not is(dead, 'list') then
  return 2
end
if redis.call('LREM', taken, 1, entry) ~= 1 then return 0 end
if mode == 'retry' then
  redis.call('HSET', failures, sha, ARGV[5])
  redis.call('ZADD', sched, ARGV[6], ARGV[7] .. ':' .. entry)
else
  redis.call('HDEL', failures, sha)
  redis.call('DEL', trace)
  redis.call('LPUSH', dead, ARGV[8])
end
return 1
