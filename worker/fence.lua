#!lua
-- fence.lua: keeps a worker's fence on one task queue (keyspace.WorkerFence:
-- a STRING holding the token of the worker's registration, in the queue's
-- slot), on which take.lua, complete.lua and fail.lua check the token.
-- The leader's replay.lua deletes the fence of a dead worker.
--
-- KEYS[1]  the fence (STRING)
-- ARGV[1]  'set', 'refresh' or 'release'
-- ARGV[2]  the registration token
-- ARGV[3]  the fence's TTL, ms, >= 1 ('set', 'refresh')
--
-- 'set' writes the token with the TTL (a new lease); 'refresh' renews the
-- TTL only while the fence holds the token; 'release' deletes the fence
-- only while it holds the token.
--
-- Returns {code}:
--   1  done
--   0  fenced ('refresh', 'release'): the fence is gone or holds another
--      token (the leader replayed the worker's taken list of the queue,
--      or the fence expired); nothing written
--   2  the fence is not a string; nothing written
--   3  bad argument; nothing written

local fence, op, token, ttl = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
if not token or (op ~= 'set' and op ~= 'refresh' and op ~= 'release')
    or (op ~= 'release' and not (ttl and ttl >= 1)) then
  return {3}
end
if not is(fence, 'string') then return {2} end
if op == 'set' then
  redis.call('SET', fence, token, 'PX', ttl)
  return {1}
end
if redis.call('GET', fence) ~= token then return {0} end
if op == 'refresh' then
  redis.call('PEXPIRE', fence, ttl)
else
  redis.call('DEL', fence)
end
return {1}
