#!lua
-- requeue.lua: puts one dead-letter entry's event back into play, or drops
-- the entry of an event set aside for its size, atomically. The entry
-- leaves the dead-letter list (LREM, one copy, the oldest) and its event
-- is LPUSHed to the input queue, as a producer pushes events; or nothing
-- is written at all. Run twice for one entry (two operators, a retry after
-- a lost reply), the event is pushed once: the second run finds no entry.
-- Identical entries are interchangeable: each run moves one of them.
--
-- The event goes back bare, without the crash replay count an entry may
-- carry (keyspace.StampReplays): a requeued poison event gets its full
-- allowance of replays again.
--
-- An event set aside for its size (its entry names a hash and a field,
-- ARGV[3]) is pushed from that field, which is deleted in the same step;
-- mode 'drop' removes the entry and deletes the field.
--
-- Redis does not roll back a script: every key's type is checked before
-- anything is written.
--
-- KEYS[1]  the dead-letter list "<input_queue>/dead"
-- KEYS[2]  the input queue
-- KEYS[3]  the hash of the event set aside, when ARGV[3] is not ''
--
-- ARGV[1]  the entry, exactly as stored
-- ARGV[2]  the event to push, exact bytes (unused when ARGV[3] is given)
-- ARGV[3]  the field of the event set aside, or ''
-- ARGV[4]  'requeue' or 'drop' ('drop' only with ARGV[3])
--
-- Returns {code, ...} (internal/script's reply convention):
--   {1}     requeued (or dropped)
--   {0}     fenced: the entry is not in the dead-letter list (requeued or
--           dropped meanwhile); nothing was written
--   {0, 1}  fenced: requeue, the entry is there but the field of its
--           event set aside is gone; nothing was written
--   {2}     the dead-letter list is not a list; nothing was written
--   {3}     the input queue is not a list; nothing was written
--   {4}     the hash of the event set aside is not a hash; nothing was
--           written
--   {5}     bad argument (ARGV[4] neither 'requeue' nor 'drop', or 'drop'
--           without ARGV[3]); nothing was written

local dead, input = KEYS[1], KEYS[2]
local entry, event, field, mode = ARGV[1], ARGV[2], ARGV[3] or '', ARGV[4] or 'requeue'
local store = field ~= '' and KEYS[3] or nil

-- type_of and is come from internal/script's TypeCheck prelude.

if mode ~= 'requeue' and (mode ~= 'drop' or not store) then return {5} end
if not is(dead, 'list') then return {2} end
if not is(input, 'list') then return {3} end
if store and not is(store, 'hash') then return {4} end

if store and mode == 'requeue' and redis.call('HEXISTS', store, field) == 0 then
  if redis.call('LPOS', dead, entry) == false then
    return {0}
  end
  return {0, 1}
end
if redis.call('LREM', dead, -1, entry) ~= 1 then
  return {0}
end
if store then
  if mode == 'requeue' then
    local stored = redis.call('HGET', store, field)
    redis.call('LPUSH', input, stored)
  end
  redis.call('HDEL', store, field)
  return {1}
end
redis.call('LPUSH', input, event)
return {1}
