#!lua
-- deregister.lua: removes a replica's registration, only if the replica key
-- still holds one of this membership's tokens.
--
-- KEYS[1]  the replica key (STRING: the token of the live registration)
-- KEYS[2]  the replica info key (STRING: JSON)
-- KEYS[3]  the registry (ZSET: replica id -> registration time)
-- KEYS[4]  the owners (HASH: taken list -> replica id)
-- ARGV[1]  this membership's token
-- ARGV[2]  another token of it whose registration may have run (its reply
--          was lost), "" if none
-- ARGV[3]  the replica id
-- ARGV[4..] its taken lists: their owner entries are removed where they
--          still name this id
--
-- Returns {code} (internal/script's reply convention):
--   1  removed
--   0  fenced: the key expired, holds another token or is not a string
--      (another registration of this id owns the entries now, or the
--      leader will clean them up); nothing written
--   2  the replica info key is not a string; nothing written
--   3  the registry is not a sorted set; nothing written
--   4  the owners are not a hash; nothing written
--   5  bad argument: the replica id ARGV[3] is empty; nothing written

if not ARGV[3] or ARGV[3] == '' then
  return {5}
end
local current = type_of(KEYS[1]) == 'string'
current = current and redis.call('GET', KEYS[1])
if not current or (current ~= ARGV[1] and (ARGV[2] == '' or current ~= ARGV[2])) then
  return {0}
end
local want = {'string', 'string', 'zset', 'hash'}
for i = 2, 4 do
  if not is(KEYS[i], want[i]) then
    return {i}
  end
end

redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[3])
for i = 4, #ARGV do
  if redis.call('HGET', KEYS[4], ARGV[i]) == ARGV[3] then
    redis.call('HDEL', KEYS[4], ARGV[i])
  end
end
return {1}
