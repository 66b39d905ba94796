#!lua
-- fence.lua: keeps a worker's fence on one task queue (keyspace.WorkerFence:
-- a STRING holding the token of the worker's registration, in the queue's
-- slot), on which take.lua, complete.lua and fail.lua check the token.
--
-- KEYS[1]  the fence
-- ARGV[1]  'set', 'refresh' or 'release'
-- ARGV[2]  the registration token
-- ARGV[3]  the fence's TTL, ms ('set', 'refresh')
--
-- 'set' writes the token with the TTL (a new lease); 'refresh' renews the
-- TTL only while the fence holds the token; 'release' deletes the fence
-- only while it holds the token.
--
-- Returns 1 done; 0 the fence is gone or holds another token (refresh,
-- release: the leader replayed the worker's taken list of the queue, or
-- the fence expired); 2 the fence is not a string (nothing written); 3 bad
-- argument.

local fence, op, token, ttl = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = type_of(fence)
if t ~= 'none' and t ~= 'string' then return 2 end
if op == 'set' then
  if not ttl or ttl < 1 then return 3 end
  redis.call('SET', fence, token, 'PX', ttl)
  return 1
end
if t == 'none' or redis.call('GET', fence) ~= token then return 0 end
if op == 'refresh' then
  if not ttl or ttl < 1 then return 3 end
  redis.call('PEXPIRE', fence, ttl)
  return 1
elseif op == 'release' then
  redis.call('DEL', fence)
  return 1
end
return 3
