#!lua
-- take.lua: takes events in one round trip, without blocking, or sets
-- aside the event a blocking take just took.
--
-- Mode 'take' takes up to ARGV[2] events, and stops once the events taken
-- add up to ARGV[3] bytes or more (at least one is taken): a call's time
-- is bounded by that budget plus one event, whatever the queue holds. The
-- events move atomically from the input queue (its right end, where the
-- oldest event is) to the head of this replica's taken list, as that many
-- BRPOPLPUSH or BLMOVE RIGHT LEFT would: afterwards the taken list starts
-- with the newest event taken and the input queue has lost its oldest
-- ones. Each event is read once (LINDEX), then one LTRIM and one LPUSH per
-- thousand events move them.
--
-- An event longer than ARGV[4] bytes (max_event_bytes) is not taken with
-- others: found first, it is set aside alone. Its bytes go to field
-- ARGV[5] of the hash KEYS[3], and the taken list gets in its place the
-- short entry keyspace.SetAside describes ("\0resc:oversized=<size>:
-- <field>\0<first 200 bytes>"), which the replica dead-letters without
-- reading the event again. Found after others, it is left for the next
-- call.
--
-- Mode 'aside' sets aside the newest entry of the taken list, which a
-- blocking take (BLMOVE) has just put there, when it is ARGV[2] bytes long
-- (else it was moved meanwhile: nothing is written); field ARGV[3].
--
-- KEYS[1]  the input queue
-- KEYS[2]  this replica's taken list
-- KEYS[3]  the oversized events of the input queue (keyspace.Oversized)
--
-- Returns the entries taken, oldest first (set-aside entries for the
-- events set aside); empty when the queue is empty, or in mode 'aside'
-- when the entry was not there.

local input, taken, store = KEYS[1], KEYS[2], KEYS[3]
-- Redis does not roll a script back: a taken list of the wrong type would
-- make the LPUSH fail after the LTRIM, and the events would be lost.
local function check(key, want, what)
  local t = redis.call('TYPE', key)
  t = t.ok or t
  if t ~= want and t ~= 'none' then
    return redis.error_reply('WRONGTYPE take.lua: ' .. what .. ' ' .. key .. ' is a ' .. t .. ', not a ' .. want)
  end
end
local bad = check(taken, 'list', 'the taken list')
if bad then return bad end

local function aside_entry(e, field)
  return '\0resc:oversized=' .. string.format('%d', #e) .. ':' .. field .. '\0' .. string.sub(e, 1, 200)
end

-- set_aside stores e under field; false when the field is taken (a bug of
-- the caller: fields are unique to their event), having written nothing.
local function set_aside(e, field)
  return redis.call('HSETNX', store, field, e) == 1
end

if ARGV[1] == 'aside' then
  local size, field = tonumber(ARGV[2]), ARGV[3]
  bad = check(store, 'hash', 'the oversized events hash')
  if bad then return bad end
  local e = redis.call('LINDEX', taken, 0)
  if not e or #e ~= size then
    return {}
  end
  if not set_aside(e, field) then
    return redis.error_reply('ERR take.lua: field ' .. field .. ' of ' .. store .. ' already holds an event')
  end
  local p = aside_entry(e, field)
  redis.call('LSET', taken, 0, p)
  return {p}
end

local want, budget, max, field = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
if ARGV[1] ~= 'take' or not (want and budget and max) then
  return redis.error_reply('ERR take.lua: bad arguments')
end
local got, bytes = {}, 0
for i = 1, want do
  local e = redis.call('LINDEX', input, -i)
  if not e then
    break
  end
  if #e > max then
    if i > 1 then
      break -- set aside alone, by the next call
    end
    bad = check(store, 'hash', 'the oversized events hash')
    if bad then return bad end
    if not set_aside(e, field) then
      return redis.error_reply('ERR take.lua: field ' .. field .. ' of ' .. store .. ' already holds an event')
    end
    local p = aside_entry(e, field)
    redis.call('LTRIM', input, 0, -2)
    redis.call('LPUSH', taken, p)
    return {p}
  end
  got[i] = e
  bytes = bytes + #e
  if bytes >= budget then
    break
  end
end
local n = #got
if n == 0 then
  return {}
end
redis.call('LTRIM', input, 0, -n - 1)
-- got is oldest first, the order LPUSH must receive them in to leave the
-- newest at the head. unpack is bounded by Lua's stack: push in chunks.
local chunk = 1000
for i = 1, n, chunk do
  redis.call('LPUSH', taken, unpack(got, i, math.min(i + chunk - 1, n)))
end
return got
