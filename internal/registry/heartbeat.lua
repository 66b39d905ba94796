#!lua
-- heartbeat.lua: renews a replica's registration, only if the replica key
-- still holds this registration's token.
--
-- KEYS[1]  the replica key (STRING: the token of the live registration)
-- KEYS[2]  the replica info key (STRING: JSON)
-- ARGV[1]  this registration's token
-- ARGV[2]  the new TTL of both keys, milliseconds (dead-after)
--
-- Returns {code} (internal/script's reply convention):
--   1  renewed
--   0  fenced: the key expired, holds another token or is not a string
--      (the registration is lost); nothing written
--   2  bad argument: ARGV[2] is not valid; nothing written
-- (The info key is only PEXPIREd, which any type takes: not checked.)

local ttl = tonumber(ARGV[2])
if not ttl or ttl < 1 or ttl ~= math.floor(ttl) then
  return {2}
end
-- TYPE first: GET on a key of another type is an error, and such a key is
-- not this registration's either. (One command per line: a refusal of the
-- ACL is reported by line, script.NoPermission names the command from it.)
if type_of(KEYS[1]) ~= 'string' then
  return {0}
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0}
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {1}
