#!lua
-- replay.lua: replays up to ARGV[1] entries of the taken list of a dead
-- replica (an orphan list), atomically. Each entry leaves the taken list by
-- LPOP inside this script, so it moves exactly once even when two leaders
-- run this script on the same list at the same time: an entry is either
-- still in the list or gone to exactly one destination.
--
-- Entries are taken from the head of the taken list (the newest: replicas
-- take with LMOVE RIGHT LEFT) and pushed to the right end of the input
-- queue, the end replicas take from. The oldest entry so ends rightmost: it
-- is taken first and the entries keep their relative order, across calls
-- too (each call moves older entries than the previous one, to the right
-- of them).
--
-- Each entry carries its own crash replay count, stamped on it by this
-- script ("\0resc:replays=<n>\0<event>", the ReplayStamp prelude; an
-- unstamped entry counts 0), so two occurrences of the same event text
-- count their crashes apart. With n the entry's count plus one:
--   n == 1               RPUSH the event stamped n to the input queue
--                        (taken next)
--   1 < n <= ARGV[3]     ZADD it, stamped n, to the delay schedule, due at
--                        now + ARGV[4] * 2^(n-2) ms, capped at ARGV[5] ms
--   n > ARGV[3]          LPUSH a JSON entry of the bare event to the
--                        dead-letter list
--
-- Redis does not roll back a script: every key's type is checked before
-- anything is written.
--
-- KEYS[1]  the orphan taken list "<taken_queue>/<replica-id>"
-- KEYS[2]  the input queue
-- KEYS[3]  the delay schedule of the input queue
-- KEYS[4]  the dead-letter list "<input_queue>/dead"
-- KEYS[5]  optional: the dead worker's fence on the queue
--          (keyspace.WorkerFence), deleted by the call: a worker presumed
--          dead writes nothing more to the queue once its list is replayed
--
-- ARGV[1]  the most entries to move, >= 1
-- ARGV[2]  now, Unix ms
-- ARGV[3]  max replays (0: every entry goes to the dead-letter list)
-- ARGV[4]  the delay of the 2nd replay, ms
-- ARGV[5]  the longest delay, ms
-- ARGV[6]  the dead replica's id (dead-letter entries)
-- ARGV[7]  the input queue's name (dead-letter entries)
-- ARGV[8]  now in RFC 3339 (dead-letter entries)
-- ARGV[9]  the byte budget: the call stops once the entries it moved add
--          up to this many bytes (at least one is moved), so that its time
--          is bounded by that budget plus one entry
-- ARGV[10] optional: what a poison entry may crash, for the dead-letter
--          reason (default "replicas (poison event)"; the worker queues
--          pass "workers (poison task)")
--
-- Returns {code, replayed, delayed, dead_lettered, left}, left being the
-- length of the taken list after the call:
--   1  done (also when the taken list does not exist)
--   2  the taken list is not a list; nothing was written
--   3  the input queue is not a list; nothing was written
--   4  the delay schedule is not a sorted set; nothing was written
--   5  the dead-letter list is not a list; nothing was written
--   6  bad argument; nothing was written

local taken, input, sched, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local max_entries, now = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_replays, delay0, max_delay = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local replica, queue, time, budget = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local victims = ARGV[10] or 'replicas (poison event)'

if not (max_entries and now and max_replays and delay0 and max_delay and time and budget)
    or max_entries < 1 or max_replays < 0 or delay0 < 0 or max_delay < 0 then
  return {6, 0, 0, 0, 0}
end

-- type_of and is come from internal/script's TypeCheck prelude, unstamp
-- and stamp from its ReplayStamp prelude.

local tt = type_of(taken)
if tt ~= 'none' and tt ~= 'list' then return {2, 0, 0, 0, 0} end
if tt == 'list' then
  if not is(input, 'list') then return {3, 0, 0, 0, 0} end
  if not is(sched, 'zset') then return {4, 0, 0, 0, 0} end
  if not is(dead, 'list') then return {5, 0, 0, 0, 0} end
end
if KEYS[5] then redis.call('DEL', KEYS[5]) end
if tt == 'none' then return {1, 0, 0, 0, 0} end

-- utf8 returns s and true when s is valid UTF-8 (Go's rules: no overlong
-- form, no surrogate, nothing above U+10FFFF); else a copy of s with each
-- invalid byte replaced by U+FFFD, as Go's encoding/json does, and false.
local function utf8(s)
  local out, n, i, start, valid = {}, #s, 1, 1, true
  while i <= n do
    local c = string.byte(s, i)
    local len = 0
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then len = 3
    elseif c >= 0xF0 and c <= 0xF4 then len = 4
    end
    local ok = len > 0 and i + len - 1 <= n
    if ok and len > 1 then
      local lo, hi = 0x80, 0xBF
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F
      elseif c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
      local c2 = string.byte(s, i + 1)
      ok = c2 >= lo and c2 <= hi
      for j = i + 2, i + len - 1 do
        local cj = string.byte(s, j)
        ok = ok and cj >= 0x80 and cj <= 0xBF
      end
    end
    if ok then
      i = i + len
    else
      valid = false
      out[#out + 1] = string.sub(s, start, i - 1)
      out[#out + 1] = '\239\191\189'
      i = i + 1
      start = i
    end
  end
  if valid then
    return s, true
  end
  out[#out + 1] = string.sub(s, start)
  return table.concat(out), false
end

local alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64char(v)
  return string.sub(alphabet, v + 1, v + 1)
end
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = string.byte(s, i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    out[#out + 1] = b64char(math.floor(v / 262144) % 64) .. b64char(math.floor(v / 4096) % 64) ..
      (b and b64char(math.floor(v / 64) % 64) or '=') .. (c and b64char(v % 64) or '=')
  end
  return table.concat(out)
end

local function dead_entry(event, replays)
  local text, valid = utf8(event)
  local e = {
    event = text,
    queue = (utf8(queue)),
    reason = 'replayed ' .. replays .. ' times: it may crash ' .. victims,
    replica = (utf8(replica)),
    time = time,
    count = replays,
  }
  if not valid then
    e.event_base64 = base64(event)
  end
  return cjson.encode(e)
end

local replayed, delayed, lettered, seq, bytes = 0, 0, 0, 0, 0
for _ = 1, max_entries do
  if bytes >= budget then
    break
  end
  local entry = redis.call('LPOP', taken)
  if not entry then
    break
  end
  bytes = bytes + #entry
  local event, n = unstamp(entry)
  n = n + 1
  if n > max_replays then
    redis.call('LPUSH', dead, dead_entry(event, n - 1))
    lettered = lettered + 1
  elseif n == 1 then
    redis.call('RPUSH', input, stamp(n, event))
    replayed = replayed + 1
  else
    local due = string.format('%d', now + delay_ms(delay0, max_delay, n - 2))
    -- Identical events must stay distinct members: the member carries now
    -- and a number, bumped until no member has it.
    local member = stamp(n, event)
    repeat
      seq = seq + 1
    until redis.call('ZADD', sched, 'NX', due, string.format('%d', now) .. '-' .. seq .. ':' .. member) == 1
    delayed = delayed + 1
  end
end
return {1, replayed, delayed, lettered, redis.call('LLEN', taken)}
