#!lua
-- prune.lua: removes a dead replica's (or SDK worker's) registry entry once
-- it has been dead for the retention period and its taken lists are empty.
-- Only the leader runs it; two leaders running it at once is safe: each
-- step is idempotent and the whole runs atomically.
--
-- KEYS[1]  the replica key (STRING: its presence is the replica's life)
-- KEYS[2]  the replica info key (STRING: JSON)
-- KEYS[3]  the registry (ZSET: replica id -> registration time)
-- KEYS[4]  the owners (HASH: taken list -> replica id)
-- KEYS[5]  the dead-since marks (HASH: replica id -> Unix ms first found dead)
-- ARGV[1]  the replica id
-- ARGV[2]  now, Unix milliseconds (the leader's clock)
-- ARGV[3]  the retention, milliseconds (> 0)
-- ARGV[4]  '1' when one of its taken lists holds events (or could not be
--          read): it is not removed, the leader replays them first
-- ARGV[5..] its taken lists as the owners hash named them: their owner
--          entries are removed with it where they still name the id
--
-- Returns {code, outcome} (internal/script's reply convention; no code 0:
-- only the leader prunes, under no fence):
--   1  done, and outcome:
--        0  nothing to do: alive (its mark, if any, removed) or not
--           registered
--        1  found dead for the first time: marked with now
--        2  dead for less than the retention
--        3  dead past the retention but its taken lists hold events: kept
--        4  removed (registry entry, info, owner entries, mark)
--   2..6  KEYS[code - 1] has the wrong type; nothing written
--   7     bad argument; nothing written

local replica, info, registry, owners, marks = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, retention, held = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]

-- Check everything before writing anything: Redis does not roll back.
if id == '' or not now or not retention or retention <= 0 then return {7} end
-- (is: the TypeCheck prelude.)
local want = {'string', 'string', 'zset', 'hash', 'hash'}
for i = 1, 5 do
  if not is(KEYS[i], want[i]) then
    return {i + 1}
  end
end

local alive = redis.call('EXISTS', replica) == 1
local listed = redis.call('ZSCORE', registry, id)
if alive or not listed then
  redis.call('HDEL', marks, id)
  return {1, 0}
end
local since = tonumber(redis.call('HGET', marks, id))
if not since then
  redis.call('HSET', marks, id, now)
  return {1, 1}
end
if now - since < retention then
  return {1, 2}
end
if held ~= '0' then
  return {1, 3}
end
redis.call('ZREM', registry, id)
redis.call('DEL', info)
redis.call('HDEL', marks, id)
for i = 5, #ARGV do
  if redis.call('HGET', owners, ARGV[i]) == id then
    redis.call('HDEL', owners, ARGV[i])
  end
end
return {1, 4}
