#!lua
-- fail.lua: records a failed attempt of a task, atomically, only if the
-- task is still in the worker's taken list and the worker's fence holds
-- ARGV[1]. The task leaves the taken list for exactly one of:
--   'retry'  the delay schedule of its queue (member "<tag>:<entry>"), due
--            ARGV[6] * 2^(ARGV[5]-1) ms after ARGV[9], at most ARGV[7] ms
--            (the Delay prelude, as the leader's replays), its failure
--            count set to ARGV[5]; the leader's (and every worker's)
--            promotion pushes it back when due
--   'dead'   the dead-letter list "<queue>/dead" (ARGV[10], a JSON entry),
--            its failure count and trace context removed
--
-- KEYS[1]  the worker's taken list (LIST)
-- KEYS[2]  the worker's fence on the queue (keyspace.WorkerFence: STRING,
--          the registration's token; in the queue's slot)
-- KEYS[3]  the failure counts of the queue (HASH)
-- KEYS[4]  the delay schedule of the queue (ZSET)
-- KEYS[5]  the dead-letter list of the queue (LIST)
-- KEYS[6]  the task's trace context key (STRING)
-- ARGV[1]  the registration token
-- ARGV[2]  the entry as taken
-- ARGV[3]  the SHA1 hex of the task
-- ARGV[4]  'retry' or 'dead'
-- ARGV[5]  the failure count, >= 1 (the attempts failed so far)
-- ARGV[6]  the delay after the first failure, ms ('retry')
-- ARGV[7]  the longest delay, ms ('retry')
-- ARGV[8]  the member's tag, unique, without ':' ('retry')
-- ARGV[9]  now, Unix ms ('retry')
-- ARGV[10] the dead-letter entry ('dead')
--
-- Returns {code, ...}:
--   1  done: {1, delay ms} for 'retry', {1, 0} for 'dead'
--   0  fenced: the fence is gone or holds another token, or the task is
--      no longer in the taken list; nothing written
--   2  the taken list is not a list; nothing written
--   3  the failure counts are not a hash; nothing written
--   4  the delay schedule is not a sorted set; nothing written
--   5  the dead-letter list is not a list; nothing written
--   6  bad argument; nothing written

local taken, fence, failures, sched, dead, trace = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local entry, sha, mode = ARGV[2], ARGV[3], ARGV[4]
local n, first, longest, now = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[9])
if mode ~= 'retry' and mode ~= 'dead' then return {6} end
if mode == 'retry' and not (n and n >= 1 and first and longest and now and ARGV[8]) then return {6} end
if mode == 'dead' and not ARGV[10] then return {6} end
if type_of(fence) ~= 'string' or redis.call('GET', fence) ~= ARGV[1] then return {0} end
if not is(taken, 'list') then return {2} end
if not is(failures, 'hash') then return {3} end
if not is(sched, 'zset') then return {4} end
if not is(dead, 'list') then return {5} end
if redis.call('LREM', taken, 1, entry) ~= 1 then return {0} end
if mode == 'retry' then
  local delay = delay_ms(first, longest, n - 1)
  redis.call('HSET', failures, sha, ARGV[5])
  redis.call('ZADD', sched, string.format('%d', now + delay), ARGV[8] .. ':' .. entry)
  return {1, delay}
end
redis.call('HDEL', failures, sha)
redis.call('DEL', trace)
redis.call('LPUSH', dead, ARGV[10])
return {1, 0}
