#!lua
-- register.lua: registers a replica id under a new token, unless another
-- registration of that id is alive. Liveness is the TTL of KEYS[1]: no
-- clock is compared.
--
-- KEYS[1]  the replica key (STRING: the token of the live registration)
-- KEYS[2]  the replica info key (STRING: JSON)
-- KEYS[3]  the registry (ZSET: replica id -> registration time)
-- KEYS[4]  the owners (HASH: taken list -> replica id)
-- ARGV[1]  the new token (not empty)
-- ARGV[2]  an earlier token of the same membership, "" if none: a key
--          holding it is taken over (re-registration after a lost lease
--          while the key was still alive)
-- ARGV[3]  the TTL of both keys, milliseconds (dead-after)
-- ARGV[4]  the replica id
-- ARGV[5]  the registration time, Unix seconds
-- ARGV[6]  the info JSON
-- ARGV[7..] the taken lists this replica owns
--
-- Returns {code, detail} (internal/script's reply convention):
--   {1, 0}     registered (the key was free)
--   {1, 1}     registered over ARGV[1] or ARGV[2] (a retry whose reply
--              was lost, or a re-registration of the same membership)
--   {0, pttl}  fenced: the id is in use by a live registration whose key
--              expires in pttl ms (-1: it has no TTL); nothing written
--   {2}        the replica key is not a string; nothing written
--   {3}        the replica info key is not a string; nothing written
--   {4}        the registry is not a sorted set; nothing written
--   {5}        the owners are not a hash; nothing written
--   {6, i}     bad argument: ARGV[i] is not valid; nothing written

local replica, info, registry, owners = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local token, previous, id, infoJSON = ARGV[1], ARGV[2], ARGV[4], ARGV[6]
local ttl, now = tonumber(ARGV[3]), tonumber(ARGV[5])

-- Check everything before writing anything: Redis does not roll back.
if token == '' then return {6, 1} end
if not ttl or ttl < 1 or ttl ~= math.floor(ttl) then return {6, 3} end
if id == '' then return {6, 4} end
if not now then return {6, 5} end
local want = {'string', 'string', 'zset', 'hash'}
for i = 1, 4 do
  if not is(KEYS[i], want[i]) then
    return {i + 1}
  end
end

local over = 0
local current = redis.call('GET', replica)
if current then
  if current == token or (previous ~= '' and current == previous) then
    over = 1
  else
    return {0, redis.call('PTTL', replica)}
  end
end

redis.call('SET', replica, token, 'PX', ttl)
redis.call('SET', info, infoJSON, 'PX', ttl)
redis.call('ZADD', registry, now, id)

-- Taken lists this id owned in an earlier run and owns no more are
-- dropped from the owners: they become lists of no registered replica,
-- which the leader's safety net replays.
local owned = {}
for i = 7, #ARGV do
  owned[ARGV[i]] = true
end
local all = redis.call('HGETALL', owners)
for i = 1, #all, 2 do
  if all[i + 1] == id and not owned[all[i]] then
    redis.call('HDEL', owners, all[i])
  end
end
for i = 7, #ARGV do
  redis.call('HSET', owners, ARGV[i], id)
end
return {1, over}
