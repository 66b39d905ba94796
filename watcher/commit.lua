#!lua
-- commit.lua: commits one event atomically (fenced commit).
--
-- Redis does not roll back a script, so it checks before it writes:
--   1. every destination has the right type (queue: list or none, set:
--      zset or none, dead-letter list: list or none) and no key is both a
--      queue and a set; when one has not,
--      it writes nothing and says which (the caller then dead-letters the
--      event with mode 'dead', fenced like a commit);
--   2. the event is still in this replica's taken list: LREM from the tail,
--      count -1, must remove exactly one copy. If not, the event was replayed
--      elsewhere and this replica writes nothing;
--   3. only then it pushes the tasks (ZADD NX first when a set is given, and
--      LPUSH only when the task was new to the set) and publishes resc's
--      listener messages.
--
-- KEYS[1]   this replica's taken list
-- KEYS[2]   the dead-letter list of the input queue
-- KEYS[3..] for each task: its queue, then its set when it has one
--
-- ARGV[1]   the event
-- ARGV[2]   now, Unix time in seconds (the score of new set members)
-- ARGV[3]   listener channel, '' for none
-- ARGV[4]   the taken_queue name written in listener messages
-- ARGV[5]   mode: 'commit' pushes the tasks, 'dead' dead-letters the event
-- ARGV[6]   with 'dead', the dead-letter entry (JSON); '' with 'commit'
-- ARGV[7..] with 'commit', for each task: the task, then '1' when it has a
--           set, else '0'
--
-- Returns {code, pushed, deduplicated[, reason]}:
--   1  committed: the event left the taken list, its new tasks were pushed
--   2  not owned: the event is not in the taken list; nothing was written
--   3  bad destination: nothing was written; reason says which and why
--   4  dead-lettered as asked (mode 'dead')
--   5  the dead-letter list has the wrong type; nothing was written

local taken, dead = KEYS[1], KEYS[2]
local event, now, channel, taken_name = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local mode, dead_entry = ARGV[5], ARGV[6]

local function type_of(key)
  local t = redis.call('TYPE', key)
  return t.ok or t
end

if mode == 'dead' then
  local dt = type_of(dead)
  if dt ~= 'list' and dt ~= 'none' then
    return {5, 0, 0}
  end
  if redis.call('LREM', taken, -1, event) ~= 1 then
    return {2, 0, 0}
  end
  redis.call('LPUSH', dead, dead_entry)
  return {4, 0, 0}
end

-- 1. validate every destination. A key used as a queue by one task and as
-- a set by another (or by the same task) would change type at the first
-- write: refused too. Each key's type is read once.
local role = {}
local function check(key, want)
  local had = role[key]
  if had == nil then
    local t = type_of(key)
    if t ~= want and t ~= 'none' then
      return (want == 'list' and 'queue ' or 'set ') .. key .. ' is a ' .. t ..
        (want == 'list' and ', not a list' or ', not a sorted set')
    end
    role[key] = want
  elseif had ~= want then
    return 'key ' .. key .. ' is both a queue and a set of this event\'s tasks'
  end
  return nil
end
local k = 3
for i = 7, #ARGV, 2 do
  local why = check(KEYS[k], 'list')
  if why then
    return {3, 0, 0, why}
  end
  k = k + 1
  if ARGV[i + 1] == '1' then
    why = check(KEYS[k], 'zset')
    if why then
      return {3, 0, 0, why}
    end
    k = k + 1
  end
end

-- 2. prove ownership
if redis.call('LREM', taken, -1, event) ~= 1 then
  return {2, 0, 0}
end

-- 3. write
local pushed, deduped = 0, 0
k = 3
for i = 7, #ARGV, 2 do
  local task, queue = ARGV[i], KEYS[k]
  local new = true
  k = k + 1
  if ARGV[i + 1] == '1' then
    new = redis.call('ZADD', KEYS[k], 'NX', now, task) == 1
    k = k + 1
  end
  if new then
    redis.call('LPUSH', queue, task)
    pushed = pushed + 1
    if channel ~= '' then
      redis.call('PUBLISH', channel, taken_name .. ' TRIGGER ' .. event .. ' -> ' .. task)
    end
  else
    deduped = deduped + 1
  end
end
if channel ~= '' then
  redis.call('PUBLISH', channel, taken_name .. ' DONE ' .. event)
end
return {1, pushed, deduped}
