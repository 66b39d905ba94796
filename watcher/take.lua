#!lua
-- take.lua: takes events in one round trip, without blocking, or sets
-- aside the event a blocking take just took.
--
-- Mode 'take' takes up to ARGV[2] events, and stops once the events taken
-- add up to ARGV[3] bytes or more (at least one is taken; see the reads
-- below for how far past it one call can go). The events move atomically
-- from the input queue (its right end, where the oldest event is) to the
-- head of this replica's taken list, as that many BRPOPLPUSH or BLMOVE
-- RIGHT LEFT would: afterwards the taken list starts with the newest event
-- taken and the input queue has lost its oldest ones.
--
-- An event longer than ARGV[4] bytes (max_event_bytes) is set aside: its
-- bytes go to field "<ARGV[5]>-<n>" of the hash KEYS[3] (n its position
-- in this call), and the taken list gets in its place the short entry
-- keyspace.SetAside describes ("\0resc:oversized=<size>:<field>\0<first
-- 200 bytes>"), which the replica dead-letters without reading the event
-- again.
--
-- Mode 'aside' sets aside the newest entry of the taken list, which a
-- blocking take (BLMOVE) has just put there, when it is ARGV[2] bytes long
-- (else it was moved meanwhile: nothing is written); field ARGV[3].
--
-- KEYS[1]  the input queue
-- KEYS[2]  this replica's taken list
-- KEYS[3]  the oversized events of the input queue (keyspace.Oversized)
--
-- Returns {code, ...}, all strings (the code too, so that the reply reads
-- straight into strings; internal/script's reply convention):
--   {'1', entry...}  done: the entries taken, oldest first (set-aside
--                    entries for the events set aside); none when the
--                    queue is empty
--   {'0'}            fenced ('aside'): the entry is no longer at the head
--                    of the taken list; nothing written
--   {'2'}            the taken list is not a list; nothing written
--   {'3'}            the oversized events hash is not a hash; nothing
--                    written
--   {'4', why}       bad argument (or 'aside': the field already holds an
--                    event); nothing written

local input, taken, store = KEYS[1], KEYS[2], KEYS[3]
-- Redis does not roll a script back: a taken list of the wrong type would
-- make the LPUSH fail after the RPOP, and the events would be lost.
-- (is: the TypeCheck prelude.)
if not is(taken, 'list') then
  return {'2'}
end

-- An event set aside is stored bare: a crash replay stamp it carries
-- (unstamp, internal/script's ReplayStamp prelude) would otherwise count
-- in its size, show in its dead-letter entry and come back with a requeue.
local function aside_entry(e, field)
  return '\0resc:oversized=' .. string.format('%d', #e) .. ':' .. field .. '\0' .. string.sub(e, 1, 200)
end

if ARGV[1] == 'aside' then
  local size, field = tonumber(ARGV[2]), ARGV[3]
  if not (size and field) then
    return {'4', 'aside: bad size or field'}
  end
  if not is(store, 'hash') then
    return {'3'}
  end
  local e = redis.call('LINDEX', taken, 0)
  if not e or #e ~= size then
    return {'0'}
  end
  e = unstamp(e)
  if redis.call('HSETNX', store, field, e) == 0 then
    return {'4', 'field ' .. field .. ' of ' .. store .. ' already holds an event'}
  end
  local p = aside_entry(e, field)
  redis.call('LSET', taken, 0, p)
  return {'1', p}
end

local want, budget, max, field = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
if ARGV[1] ~= 'take' or not (want and budget and max and field) then
  return {'4', 'mode or take arguments'}
end
-- Nothing may fail once an event is popped: the hash is checked first,
-- and each event set aside gets a field of its own (ARGV[5] and its
-- position in this call).
if not is(store, 'hash') then
  return {'3'}
end
-- move (the Move prelude, the worker SDK's take too) pops them in reads
-- bounded by the budget, and pushes them to the head of the taken list,
-- oldest first. got[1] is the reply's code; the entries follow it.
local got = {'1'}
move(input, taken, want, budget, got, function(e, n)
  if #e <= max then
    return e
  end
  local f = field .. '-' .. n
  e = unstamp(e)
  redis.call('HSET', store, f, e)
  return aside_entry(e, f)
end)
return got
