#!lua
-- take.lua: takes up to ARGV[1] events in one round trip, without blocking.
-- The events move atomically from the input queue (its right end, where
-- the oldest event is) to the head of this replica's taken list, as that
-- many BRPOPLPUSH or BLMOVE RIGHT LEFT would: afterwards the taken list
-- starts with the newest event taken and the input queue has lost its
-- oldest ones. Three commands per chunk of events instead of one LMOVE per
-- event.
--
-- KEYS[1]  the input queue
-- KEYS[2]  this replica's taken list
-- ARGV[1]  the most events to take
--
-- Returns the events taken, oldest first; empty when the queue is empty.

local input, taken = KEYS[1], KEYS[2]
local want = tonumber(ARGV[1])
-- Redis does not roll a script back: a taken list of the wrong type would
-- make the LPUSH fail after the LTRIM, and the events would be lost.
local tt = redis.call('TYPE', taken)
tt = tt.ok or tt
if tt ~= 'list' and tt ~= 'none' then
  return redis.error_reply('WRONGTYPE take.lua: the taken list ' .. taken .. ' is a ' .. tt .. ', not a list')
end
-- LRANGE .. -1 returns the oldest last: reversed, oldest first, which is
-- also the order LPUSH must receive them in to leave the newest at the head.
local got = redis.call('LRANGE', input, -want, -1)
local n = #got
if n == 0 then
  return {}
end
redis.call('LTRIM', input, 0, -n - 1)
local out = {}
for i = 1, n do
  out[i] = got[n + 1 - i]
end
-- unpack is bounded by Lua's stack: push in chunks.
local chunk = 1000
for i = 1, n, chunk do
  redis.call('LPUSH', taken, unpack(out, i, math.min(i + chunk - 1, n)))
end
return out
