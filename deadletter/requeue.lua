#!lua
-- requeue.lua: puts one dead-letter entry's event back into play,
-- atomically. The entry leaves the dead-letter list (LREM, one copy, the
-- oldest) and its event is LPUSHed to the input queue, as a producer
-- pushes events; or nothing is written at all. Run twice for one entry
-- (two operators, a retry after a lost reply), the event is pushed once:
-- the second run finds no entry. Identical entries are interchangeable:
-- each run moves one of them.
--
-- The event goes back bare, without the crash replay count an entry may
-- carry (keyspace.StampReplays): a requeued poison event gets its full
-- allowance of replays again.
--
-- Redis does not roll back a script: every key's type is checked before
-- anything is written.
--
-- KEYS[1]  the dead-letter list "<input_queue>/dead"
-- KEYS[2]  the input queue
--
-- ARGV[1]  the entry, exactly as stored
-- ARGV[2]  the event to push, exact bytes
--
-- Returns:
--   1  requeued
--   2  the entry is not in the dead-letter list (requeued or dropped
--      meanwhile); nothing was written
--   3  the dead-letter list is not a list; nothing was written
--   4  the input queue is not a list; nothing was written

local dead, input = KEYS[1], KEYS[2]
local entry, event = ARGV[1], ARGV[2]

-- type_of and is come from internal/script's TypeCheck prelude.

if not is(dead, 'list') then return 3 end
if not is(input, 'list') then return 4 end

if redis.call('LREM', dead, -1, entry) ~= 1 then
  return 2
end
redis.call('LPUSH', input, event)
return 1
