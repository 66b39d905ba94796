#!lua
-- commit.lua: commits one event atomically (fenced commit).
--
-- Redis does not roll back a script, so it checks before it writes:
--   0. every numeric argument parses (else code 9, nothing written);
--   1. every destination has the right type (queue: list or none, set:
--      zset or none, dead-letter list: list or none) and no key is both a
--      queue and a set; when one has not,
--      it writes nothing and says which (the caller then dead-letters the
--      event with mode 'dead', fenced like a commit);
--   2. the event is still in this replica's taken list: LREM from the tail,
--      count -1, must remove exactly one copy. If not, the event was replayed
--      elsewhere and this replica writes nothing;
--   3. only then it pushes the tasks (ZADD NX first when a set is given, and
--      LPUSH only when the task was new to the set), stores their trace
--      contexts when tracing, and publishes resc's listener messages.
--
-- Modes (ARGV[5]):
--   'commit'  as above
--   'dead'    moves the event to the dead-letter list (fenced)
--   'retry'   a fetch failed after its retries: the event leaves the taken
--             list for the delay schedule of its input queue, due after a
--             delay doubling with each attempt (KEYS[3] counts the attempts
--             of each event, apart from recovery's crash replays); past the
--             last attempt nothing is written and the caller dead-letters it
-- With flag 'f', 'commit' and 'dead' forget the event's attempts, and when
-- tracing (ARGV[7] set) its trace context; 'retry' keeps both for the next
-- attempt.
--
-- KEYS[1]   this replica's taken list
-- KEYS[2]   the dead-letter list of the input queue
-- then only the keys this call needs (each key passed costs the caller),
-- in this order:
--   the fetch attempts of the input queue (HASH: field sha1(event), value
--     "<attempts> <last attempt, Unix ms>"), with flag 'f' or mode 'retry'
--   the delay schedule of the input queue (ZSET, promoted to the input
--     queue by the leader when due), with mode 'retry'
--   the event's trace context (STRING), when tracing (ARGV[7] set)
-- then, with 'commit', for each task: its queue, then its set when it has
--   one, then its trace context key when tracing
--
-- ARGV[1]   the event
-- ARGV[2]   now, Unix time in seconds (the score of new set members)
-- ARGV[3]   listener channel, '' for none
-- ARGV[4]   the taken_queue name written in listener messages
-- ARGV[5]   mode: 'commit', 'dead' or 'retry'
-- ARGV[6]   flags: 'f' forget the event's attempts (it had fetches), 'd'
--           reply with the per-task detail; '' for none
-- ARGV[7]   how long a trace context lives, ms (> 0); '' when not tracing
-- with 'commit':
-- ARGV[8..] for each task: the task, '1' when it has a set else '0', and,
--           when tracing, its traceparent
-- with 'dead':
-- ARGV[8]   the dead-letter entry (JSON)
-- with 'retry':
-- ARGV[8]   now, Unix ms
-- ARGV[9]   the most attempts (a failed attempt past it is dead-lettered)
-- ARGV[10]  the delay after the first failed attempt, ms
-- ARGV[11]  the longest delay, ms
-- ARGV[12]  how long attempts are remembered after the last one, ms
-- ARGV[13]  a prefix making the schedule member unique
-- ARGV[14]  'busy' when the fetch did not fail but its host had no slot:
--           scheduled after ARGV[10] ms, no attempt counted; else ''
--
-- Returns {code, n, deduplicated, detail}:
--   1  committed: the event left the taken list, n new tasks were pushed;
--      with flag 'd', detail has one character per task, '1' pushed, '0'
--      skipped by its set
--   2  not owned: the event is not in the taken list; nothing was written
--   3  bad destination: nothing was written; detail says which and why
--   4  dead-lettered as asked (mode 'dead')
--   5  the dead-letter list has the wrong type; nothing was written
--   6  retry: that was the last attempt (n = its number); nothing was
--      written: the caller dead-letters the event
--   7  retry: scheduled (n = this attempt, 0 when busy; detail = due,
--      Unix ms)
--   8  retry: the schedule or the attempts have the wrong type; nothing
--      was written; detail says which
--   9  a bad argument; nothing was written; detail says which

local taken, dead = KEYS[1], KEYS[2]
local event, now, channel, taken_name = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local mode, flags, trace_ttl = ARGV[5], ARGV[6], ARGV[7]
local tracing = trace_ttl ~= ''
local forgets = string.find(flags, 'f', 1, true) ~= nil
local attempts, sched, trace_key
local k = 3 -- the next key
if forgets or mode == 'retry' then
  attempts, k = KEYS[k], k + 1
end
if mode == 'retry' then
  sched, k = KEYS[k], k + 1
end
if tracing then
  trace_key, k = KEYS[k], k + 1
end
local first_task_key = k

-- 0. arguments
local function positive(i)
  local n = tonumber(ARGV[i])
  return n and n >= 1 and n == math.floor(n)
end
if tracing and not positive(7) then
  return {9, 0, 0, 'trace context TTL ' .. trace_ttl}
end
if mode == 'retry' then
  for i = 8, 12 do
    if not positive(i) then
      return {9, 0, 0, 'ARGV[' .. i .. '] ' .. tostring(ARGV[i])}
    end
  end
elseif mode ~= 'commit' and mode ~= 'dead' then
  return {9, 0, 0, 'mode ' .. tostring(mode)}
end

local function type_of(key)
  local t = redis.call('TYPE', key)
  return t.ok or t
end

-- forget drops what 'retry' kept of the event once it is done with. A
-- wrong-typed attempts hash is left alone (never an error after a write).
local function forget()
  if forgets and type_of(attempts) == 'hash' then
    redis.call('HDEL', attempts, redis.sha1hex(event))
  end
  if tracing then
    redis.call('DEL', trace_key)
  end
end

if mode == 'retry' then
  local now_ms, max_attempts, delay0 = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
  local max_delay, ttl, tag = tonumber(ARGV[11]), tonumber(ARGV[12]), ARGV[13]
  local at, st = type_of(attempts), type_of(sched)
  if at ~= 'hash' and at ~= 'none' then
    return {8, 0, 0, 'fetch attempts ' .. attempts .. ' is a ' .. at .. ', not a hash'}
  end
  if st ~= 'zset' and st ~= 'none' then
    return {8, 0, 0, 'delay schedule ' .. sched .. ' is a ' .. st .. ', not a sorted set'}
  end
  if ARGV[14] == 'busy' then
    if redis.call('LREM', taken, -1, event) ~= 1 then
      return {2, 0, 0, ''}
    end
    local due = now_ms + delay0
    redis.call('ZADD', sched, due, tag .. ':' .. event)
    return {7, 0, 0, tostring(due)}
  end
  local field = redis.sha1hex(event)
  local n = 1
  local v = redis.call('HGET', attempts, field)
  if v then
    local count, last = string.match(v, '^(%d+) (%d+)$')
    if count and now_ms - tonumber(last) <= ttl then
      n = tonumber(count) + 1
    end
  end
  if n >= max_attempts then
    return {6, n, 0, ''}
  end
  if redis.call('LREM', taken, -1, event) ~= 1 then
    return {2, 0, 0, ''}
  end
  redis.call('HSET', attempts, field, n .. ' ' .. now_ms)
  redis.call('PEXPIRE', attempts, ttl)
  local due = now_ms + math.min(delay0 * 2 ^ (n - 1), max_delay)
  redis.call('ZADD', sched, due, tag .. ':' .. event)
  return {7, n, 0, string.format('%d', due)}
end

if mode == 'dead' then
  local dt = type_of(dead)
  if dt ~= 'list' and dt ~= 'none' then
    return {5, 0, 0, ''}
  end
  if redis.call('LREM', taken, -1, event) ~= 1 then
    return {2, 0, 0, ''}
  end
  redis.call('LPUSH', dead, ARGV[8])
  forget()
  return {4, 0, 0, ''}
end

-- 1. validate every destination. A key used as a queue by one task and as
-- a set by another (or by the same task) would change type at the first
-- write: refused too. Each key's type is read once.
local stride = tracing and 3 or 2
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
k = first_task_key
for i = 8, #ARGV, stride do
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
  if tracing then
    k = k + 1 -- its trace context key: SET takes any type
  end
end

-- 2. prove ownership
if redis.call('LREM', taken, -1, event) ~= 1 then
  return {2, 0, 0, ''}
end

-- 3. write
local pushed, deduped = 0, 0
local want_detail = string.find(flags, 'd', 1, true)
local detail = {}
k = first_task_key
for i = 8, #ARGV, stride do
  local task, queue = ARGV[i], KEYS[k]
  local new = true
  k = k + 1
  if ARGV[i + 1] == '1' then
    new = redis.call('ZADD', KEYS[k], 'NX', now, task) == 1
    k = k + 1
  end
  if tracing then
    if new then
      redis.call('SET', KEYS[k], ARGV[i + 2], 'PX', trace_ttl)
    end
    k = k + 1
  end
  if want_detail then
    detail[#detail + 1] = new and '1' or '0'
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
forget()
return {1, pushed, deduped, table.concat(detail)}
