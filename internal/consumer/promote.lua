#!lua
-- promote.lua: moves up to ARGV[2] events whose replay delay is over from
-- the delay schedule of an input queue to the right end of that queue, the
-- end replicas take from. Safe to run from any number of replicas at once:
-- each member leaves the schedule by ZREM inside this script, once.
--
-- Due members are read latest first and each is pushed to the right end, so
-- the earliest due ends rightmost and is taken first; the next call moves
-- earlier members still, to the right of these: events come back in due
-- order (no order among members due at the same millisecond).
--
-- A member is "<tag>:<event>", the tag making it unique and holding no ':'
-- ("<time>-<n>" from replay.lua, "<time>-f<run>-<seq>" from the watcher's
-- fetch retries); the event is what follows the first ':'. A member
-- without ':' is pushed whole.
--
-- KEYS[1]  the delay schedule
-- KEYS[2]  the input queue
-- ARGV[1]  now, Unix ms: members scored up to it are due
-- ARGV[2]  the most events to move, >= 1
-- ARGV[3]  the byte budget: the call stops once the members it moved add
--          up to this many bytes (at least one is moved), so that its time
--          is bounded by that budget plus one member
--
-- Returns {code, promoted}:
--   1  done
--   2  the delay schedule is not a sorted set; nothing was written
--   3  the input queue is not a list; nothing was written
--   4  bad argument; nothing was written

local sched, input = KEYS[1], KEYS[2]
local now, max, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not (now and max and budget) or max < 1 then
  return {4, 0}
end

-- type_of comes from internal/script's TypeCheck prelude.
local st = type_of(sched)
if st == 'none' then
  return {1, 0}
elseif st ~= 'zset' then
  return {2, 0}
end
local it = type_of(input)
if it ~= 'list' and it ~= 'none' then
  return {3, 0}
end

-- One member read at a time, the latest due first: the budget is checked
-- before the next one is read.
local promoted, bytes = 0, 0
while promoted < max and bytes < budget do
  local m = redis.call('ZREVRANGEBYSCORE', sched, ARGV[1], '-inf', 'LIMIT', 0, 1)[1]
  if not m then
    break
  end
  redis.call('ZREM', sched, m)
  local p = string.find(m, ':', 1, true)
  redis.call('RPUSH', input, p and string.sub(m, p + 1) or m)
  promoted = promoted + 1
  bytes = bytes + #m
end
return {1, promoted}
