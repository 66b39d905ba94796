#!lua
-- commit.lua: commits a batch of events, each atomically (fenced commit).
--
-- One call carries many events, each in its own record: the script call
-- overhead (lookup, Lua VM entry, reply) is paid once per batch instead of
-- once per event, which is most of what a small commit costs Redis. Each
-- event is still handled on its own, in order, as one call per event would:
-- its outcome never depends on whether another event of the batch was
-- committed, refused or dead-lettered, except through the keys it writes.
--
-- Redis does not roll back a script, so before any write it checks the
-- whole call's shape (else a bad-argument error reply, nothing written),
-- and, per event, before that event's writes:
--   1. every destination has the right type (queue: list or none, set:
--      zset or none, trace context: string or none, dead-letter list: list
--      or none, listener stream: stream or none) and no key has two of these roles in the event; when one
--      has not, it writes nothing for this event and says which (the
--      caller then dead-letters the event with mode 'dead', fenced like a
--      commit). Once the event has left the taken list no write can fail
--      (but for a server without "#!lua" running out of memory);
--   2. the event is still in this replica's taken list: LREM from the tail,
--      count -1, must remove exactly one copy. If not, the event was replayed
--      elsewhere and nothing is written for it;
--   3. only then it pushes the tasks (ZADD NX first when a set is given, and
--      LPUSH only when the task was new to the set), stores their trace
--      contexts when traced, publishes resc's listener messages and, when
--      a listener stream is given, appends them to it (XADD, MAXLEN ~).
--
-- Modes of an event:
--   'commit'  as above
--   'dead'    moves the event to the dead-letter list (fenced)
--   'retry'   a fetch failed after its retries: the event leaves the taken
--             list for the delay schedule of its input queue, due after a
--             delay doubling with each attempt (KEYS[3] counts the attempts
--             of each event, apart from recovery's crash replays); past the
--             last attempt nothing is written and the caller dead-letters it
-- With flag 'f', 'commit' and 'dead' forget the event's attempts, and when
-- traced (flag 't') its trace context; 'retry' keeps both for the next
-- attempt.
--
-- KEYS[1]   this replica's taken list
-- KEYS[2]   the dead-letter list of the input queue
-- KEYS[3]   the fetch attempts of the input queue (HASH: field sha1(event),
--           value "<attempts> <last attempt, Unix ms>")
-- KEYS[4]   the delay schedule of the input queue (ZSET, promoted to the
--           input queue by the leader when due)
-- KEYS[5]   the listener stream, when ARGV[11] is not '0'
-- then, for each event in order: its trace context key (STRING) when
-- traced, then with 'commit', for each task: its queue, then its set when
-- it has one, then its trace context key when traced
--
-- ARGV[1]   now, Unix time in seconds (the score of new set members)
-- ARGV[2]   listener channel, '' for none
-- ARGV[3]   the taken_queue name written in listener messages
-- ARGV[4]   'd' (or 'dp') to reply with the per-task detail, else '' (or
--           'p'); the 'p' is no longer read: the permissions are always
--           checked first (see below)
-- ARGV[5]   how long a trace context lives, ms (> 0; read for traced events)
-- ARGV[6]   now, Unix ms                                    \
-- ARGV[7]   the most attempts (a failed attempt past it     |  read by
--           is dead-lettered)                               |  'retry'
-- ARGV[8]   the delay after the first failed attempt, ms    |  only
-- ARGV[9]   the longest delay, ms                           |
-- ARGV[10]  how long attempts are remembered after the      |
--           last one, ms                                    /
-- ARGV[11]  the length the listener stream KEYS[5] is trimmed to
--           (approximately), '0' for no stream
-- then one record per event:
--   the event as the taken list holds it (with the crash replay stamp it
--   may carry, keyspace.StampReplays)
--   its mode: 'commit', 'dead' or 'retry'
--   its flags: 'f' forget its attempts (it had fetches), 't' traced; or ''
--   the number of arguments that follow, then these arguments:
--     'commit': for each task: the task, '1' when it has a set else '0',
--               and, when traced, its traceparent
--     'dead':   the dead-letter entry (JSON)
--     'retry':  a prefix making the schedule member unique, and 'busy' when
--               the fetch did not fail but its host had no slot (scheduled
--               after ARGV[8] ms, no attempt counted), else ''
--
-- Returns {code, ...} (internal/script's reply convention) for the call:
--   {1, record...}  done: four values per event, in order, after the code
--                   (a flat array: no table per event to make and convert)
--   {2, why}        bad argument: the call's records do not add up (a
--                   count that is not a number, keys or arguments missing
--                   or left over) or ARGV[11] is not valid; nothing written
-- (no code 0 or wrong-type key for the call: the fence and the types are
-- per event, in its record). A permission refused (see below) is Redis'
-- own NOPERM error reply, as Redis would refuse the command itself.
-- Each event's record is: code, n, deduplicated, detail. Its codes:
--   1  committed: the event left the taken list, n new tasks were pushed;
--      with ARGV[4] 'd', detail has one character per task, '1' pushed,
--      '0' skipped by its set, for an event of more than one task (n says
--      it for one task)
--   2  not owned: the event is not in the taken list; nothing was written
--   3  bad destination (or a listener stream of the wrong type): nothing
--      was written; detail says which and why
--   4  dead-lettered as asked (mode 'dead')
--   5  the dead-letter list has the wrong type; nothing was written
--   6  retry: that was the last attempt (n = its number); nothing was
--      written: the caller dead-letters the event
--   7  retry: scheduled (n = this attempt, 0 when busy; detail = due,
--      Unix ms)
--   8  retry: the schedule or the attempts have the wrong type; nothing
--      was written; detail says which
--   9  a bad argument of this event; nothing was written; detail says which
--  10  a command failed on this event (the server out of memory...):
--      detail is the error. What the event's commit wrote before it stays
--      (Redis has no rollback), and an event that had left the taken list
--      is put back at its oldest end (then n is 1), so that it is never
--      lost: the caller dead-letters it at once rather than push some of
--      its tasks again (with n 0 nothing was written: it may try again).
--      The other events of the call are not affected.

local taken, dead, attempts, sched = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, channel, taken_name = ARGV[1], ARGV[2], ARGV[3]
local want_detail, trace_ttl = ARGV[4] == 'd' or ARGV[4] == 'dp', ARGV[5]
local nargv = #ARGV
local stream_len = tonumber(ARGV[11])
if not stream_len or stream_len < 0 or stream_len ~= math.floor(stream_len) then
  return {2, 'bad listener stream length ARGV[11] ' .. tostring(ARGV[11])}
end
local stream = stream_len > 0 and KEYS[5] or nil

-- Permissions (Redis 7 ACL), before anything is written, for every user
-- (one taken away while a replica runs, from a user that had them all,
-- included). Redis checks the keys of the call (KEYS, read and write)
-- before the script runs, and the channel and the commands inside it only
-- as each runs: a refused one would fail an event half way through its
-- writes, and the event, put back, committed again, would push its first
-- tasks twice. So every command the writes below use, and the channel,
-- is checked here; a refusal fails the whole call with a NOPERM error
-- naming it, nothing written. This costs a few microseconds per call, not
-- per event (BENCHMARKS.md). Redis 6 has no redis.acl_check_cmd: there a
-- refusal can still fail an event half way (docs/redis.md).
if redis.acl_check_cmd then
  local probe = {
    {'LREM', taken, '0', 'x'}, {'LPUSH', taken, 'x'}, {'RPUSH', taken, 'x'},
    {'ZADD', taken, '1', 'x'}, {'SET', taken, 'x'}, {'DEL', taken},
    {'HGET', taken, 'f'}, {'HSET', taken, 'f', 'x'}, {'HDEL', taken, 'f'},
    {'PEXPIRE', taken, '1'}, {'TYPE', taken},
  }
  if stream then
    probe[#probe + 1] = {'XADD', stream, '*', 'f', 'x'}
  end
  if channel ~= '' then
    probe[#probe + 1] = {'PUBLISH', channel, 'x'}
  end
  for _, c in ipairs(probe) do
    if not redis.acl_check_cmd(unpack(c)) then
      return redis.error_reply('NOPERM resc-go commit: the Redis user may not run ' .. c[1] ..
        ' (on ' .. c[2] .. '): add +' .. string.lower(c[1]) .. ' to its ACL rule, or the key or channel pattern')
    end
  end
end

-- The shape of the call, read before anything is written: where each
-- event's record (rec_a: its first argument) and keys (rec_k) start, and
-- its argument count (rec_n).
local rec_a, rec_k, rec_n = {}, {}, {}
do
  local a, k, j = 12, stream and 6 or 5, 0
  while a <= nargv do
    local n = tonumber(ARGV[a + 3])
    if not n or n < 0 or n ~= math.floor(n) or a + 3 + n > nargv then
      return {2, 'bad record at ARGV[' .. a .. ']'}
    end
    j = j + 1
    rec_a[j], rec_k[j], rec_n[j] = a, k, n
    local flags = ARGV[a + 2]
    local traced = flags == 't' or flags == 'ft'
    if traced then
      k = k + 1
    end
    if ARGV[a + 1] == 'commit' then
      local stride = traced and 3 or 2
      if n % stride ~= 0 then
        return {2, 'bad task arguments at ARGV[' .. a .. ']'}
      end
      local extra = traced and 2 or 1
      for i = a + 5, a + 3 + n, stride do
        k = k + (ARGV[i] == '1' and extra + 1 or extra)
      end
    end
    a = a + 4 + n
  end
  if k - 1 ~= #KEYS then
    return {2, #KEYS .. ' keys, the records name ' .. (k - 1)}
  end
end

local function positive(i)
  local n = tonumber(ARGV[i])
  return n and n >= 1 and n == math.floor(n)
end

-- The type of each key the call read or wrote, so that a key shared by
-- many events of the batch (a queue, a set) is asked once. Every write
-- below records the type it leaves; a write that may delete a key forgets
-- it.
local types = {}
local ask_type = type_of -- the TypeCheck prelude's
local function type_of(key)
  local t = types[key]
  if t == nil then
    t = ask_type(key)
    types[key] = t
  end
  return t
end

-- The event being handled (see the main loop): entry as the taken list
-- holds it, event without the crash replay stamp it may carry (the
-- ReplayStamp prelude). The fence and the delay schedule take the entry,
-- so that the count stays with the occurrence; the messages, the attempts
-- field and the trace context name the event.
local event, entry, forgets, traced, fenced

-- forget drops what 'retry' kept of the event once it is done with. A
-- wrong-typed attempts hash is left alone (never an error after a write).
local function forget(trace_key)
  if forgets and type_of(attempts) == 'hash' then
    redis.call('HDEL', attempts, redis.sha1hex(event))
    types[attempts] = nil -- the last field gone, the hash is gone
  end
  if traced and type_of(trace_key) == 'string' then
    redis.call('DEL', trace_key)
    types[trace_key] = nil
  end
end

-- Each function below handles the event of the record whose arguments
-- are ARGV[first .. first + n - 1] and returns its reply.

local function retry(first, n)
  for i = 6, 10 do
    if not positive(i) then
      return 9, 0, 0, 'ARGV[' .. i .. '] ' .. tostring(ARGV[i])
    end
  end
  if n ~= 2 then
    return 9, 0, 0, 'retry takes 2 arguments, not ' .. n
  end
  local now_ms, max_attempts, delay0 = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
  local max_delay, ttl = tonumber(ARGV[9]), tonumber(ARGV[10])
  local tag = ARGV[first]
  local at, st = type_of(attempts), type_of(sched)
  if at ~= 'hash' and at ~= 'none' then
    return 8, 0, 0, 'fetch attempts ' .. attempts .. ' is a ' .. at .. ', not a hash'
  end
  if st ~= 'zset' and st ~= 'none' then
    return 8, 0, 0, 'delay schedule ' .. sched .. ' is a ' .. st .. ', not a sorted set'
  end
  if ARGV[first + 1] == 'busy' then
    if redis.call('LREM', taken, -1, entry) ~= 1 then
      return 2, 0, 0, ''
    end
    fenced = true
    local due = now_ms + delay0
    redis.call('ZADD', sched, due, tag .. ':' .. entry)
    types[sched] = 'zset'
    return 7, 0, 0, string.format('%d', due)
  end
  local field = redis.sha1hex(event)
  local count = 1
  local v = redis.call('HGET', attempts, field)
  if v then
    local c, last = string.match(v, '^(%d+) (%d+)$')
    if c and now_ms - tonumber(last) <= ttl then
      count = tonumber(c) + 1
    end
  end
  if count >= max_attempts then
    return 6, count, 0, ''
  end
  if redis.call('LREM', taken, -1, entry) ~= 1 then
    return 2, 0, 0, ''
  end
  fenced = true
  redis.call('HSET', attempts, field, count .. ' ' .. now_ms)
  redis.call('PEXPIRE', attempts, ttl)
  types[attempts] = 'hash'
  local due = now_ms + delay_ms(delay0, max_delay, count - 1) -- the Delay prelude
  redis.call('ZADD', sched, due, tag .. ':' .. entry)
  types[sched] = 'zset'
  return 7, count, 0, string.format('%d', due)
end

local function dead_letter(first, n, trace_key)
  if n ~= 1 then
    return 9, 0, 0, 'dead takes 1 argument, not ' .. n
  end
  local dt = type_of(dead)
  if dt ~= 'list' and dt ~= 'none' then
    return 5, 0, 0, ''
  end
  if redis.call('LREM', taken, -1, entry) ~= 1 then
    return 2, 0, 0, ''
  end
  fenced = true
  redis.call('LPUSH', dead, ARGV[first])
  types[dead] = 'list'
  forget(trace_key)
  return 4, 0, 0, ''
end

-- check validates key for a role of the event: 'list' (a queue), 'zset'
-- (a set) or 'string' (a trace context). role holds the roles already
-- given by the event. It returns why not, or nil.
local names = {list = 'queue ', zset = 'set ', string = 'trace context '}
local wants = {list = 'a list', zset = 'a sorted set', string = 'a string'}
local function check(role, key, want)
  local had = role[key]
  if had == nil then
    local t = type_of(key)
    if t ~= want and t ~= 'none' then
      return names[want] .. key .. ' is a ' .. t .. ', not ' .. wants[want]
    end
    role[key] = want
  elseif had ~= want then
    if had == 'stream' then
      return 'key ' .. key .. ' is both the listener stream and a ' .. names[want] .. 'of this event'
    end
    if had ~= 'string' and want ~= 'string' then
      return 'key ' .. key .. ' is both a queue and a set of this event\'s tasks'
    end
    return 'key ' .. key .. ' is both a trace context and a ' .. (had == 'string' and names[want] or names[had]) .. 'of this event'
  end
  return nil
end

local function commit(first, n, trace_key, first_task_key)
  local stride = traced and 3 or 2
  local last = first + n - 1

  -- 1. validate every destination. A key used in two roles by the event
  -- (a queue of one task and the set of another, a trace context and a
  -- queue...) would change type at the first write: refused too, so that
  -- no write can fail once the event has left the taken list.
  local role = {}
  local why = trace_key and check(role, trace_key, 'string') or nil
  if stream and not why then
    local t = type_of(stream)
    if t ~= 'stream' and t ~= 'none' then
      why = 'listener stream ' .. stream .. ' is a ' .. t .. ', not a stream'
    end
    role[stream] = 'stream'
  end
  local k = first_task_key
  for i = first, last, stride do
    why = why or check(role, KEYS[k], 'list')
    k = k + 1
    if ARGV[i + 1] == '1' then
      why = why or check(role, KEYS[k], 'zset')
      k = k + 1
    end
    if traced then
      why = why or check(role, KEYS[k], 'string')
      k = k + 1
    end
  end
  if why then
    return 3, 0, 0, why
  end

  -- 2. prove ownership
  if redis.call('LREM', taken, -1, entry) ~= 1 then
    return 2, 0, 0, ''
  end
  fenced = true

  -- 3. write
  local pushed, deduped = 0, 0
  local detail = ''
  local details = want_detail and n > stride and {} or nil
  k = first_task_key
  for i = first, last, stride do
    local task, queue = ARGV[i], KEYS[k]
    local new = true
    k = k + 1
    if ARGV[i + 1] == '1' then
      new = redis.call('ZADD', KEYS[k], 'NX', now, task) == 1
      types[KEYS[k]] = 'zset'
      k = k + 1
    end
    if traced then
      if new then
        redis.call('SET', KEYS[k], ARGV[i + 2], 'PX', trace_ttl)
        types[KEYS[k]] = 'string'
      end
      k = k + 1
    end
    if new then
      redis.call('LPUSH', queue, task)
      types[queue] = 'list'
      pushed = pushed + 1
      if channel ~= '' then
        redis.call('PUBLISH', channel, taken_name .. ' TRIGGER ' .. event .. ' -> ' .. task)
      end
      if stream then
        redis.call('XADD', stream, 'MAXLEN', '~', stream_len, '*',
          'type', 'TRIGGER', 'queue', taken_name, 'event', event, 'task', task)
        types[stream] = 'stream'
      end
    else
      deduped = deduped + 1
    end
    if details then
      details[#details + 1] = new and '1' or '0'
    end
  end
  if channel ~= '' then
    redis.call('PUBLISH', channel, taken_name .. ' DONE ' .. event)
  end
  if stream then
    redis.call('XADD', stream, 'MAXLEN', '~', stream_len, '*',
      'type', 'DONE', 'queue', taken_name, 'event', event)
    types[stream] = 'stream'
  end
  forget(trace_key)
  if details then
    detail = table.concat(details)
  end
  return 1, pushed, deduped, detail
end

-- handle handles record j; it returns the event's reply.
local function handle(j)
  local a, k, n = rec_a[j], rec_k[j], rec_n[j]
  local mode, flags = ARGV[a + 1], ARGV[a + 2]
  entry = ARGV[a]
  event = (unstamp(entry))
  traced = flags == 't' or flags == 'ft'
  forgets = flags == 'f' or flags == 'ft'
  local trace_key
  if traced then
    trace_key, k = KEYS[k], k + 1
    if not positive(5) then
      return 9, 0, 0, 'trace context TTL ' .. tostring(trace_ttl)
    end
  end
  if mode == 'commit' then
    return commit(a + 4, n, trace_key, k)
  elseif mode == 'dead' then
    return dead_letter(a + 4, n, trace_key)
  elseif mode == 'retry' then
    return retry(a + 4, n)
  end
  return 9, 0, 0, 'mode ' .. tostring(mode)
end

-- replies[1] is the call's code; the records follow it.
local replies, o = {1}, 1
for j = 1, #rec_a do
  fenced = false
  local ok, code, n, deduped, detail = pcall(handle, j)
  if not ok then
    -- A command failed on this event: the event alone fails. Once out of
    -- the taken list it goes back to it (its oldest end), so that it is
    -- not lost: the caller tries again, then dead-letters it.
    types = {}
    detail = type(code) == 'table' and code.err or tostring(code)
    if fenced then
      redis.pcall('RPUSH', taken, entry)
    end
    code, n, deduped = 10, fenced and 1 or 0, 0
  end
  replies[o + 1], replies[o + 2], replies[o + 3], replies[o + 4] = code, n, deduped, detail
  o = o + 4
end
return replies
