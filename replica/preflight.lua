#!lua flags=no-writes
-- preflight.lua: what of the commands, keys and channel a replica uses its
-- ACL user may not use, asked at start (redis.acl_check_cmd, Redis 7), so
-- that a rule missing one stops `resc run` at once, naming it, rather than
-- at the first event that needs it. It reads and writes nothing.
--
-- KEYS      none: the keys are only named (ARGV), never accessed, so one
--           call asks about keys of any hash slot
-- ARGV      checks, each: its number of words n, then n words, a command
--           and its arguments (the keys and the channel the replica uses)
--
-- Returns {code, ...} (internal/script's reply convention; no key, no
-- fence):
--   {1, i...}  done: i the numbers of the refused checks (1 for the
--              first); none when all pass, and when the server has no
--              redis.acl_check_cmd (Redis 6: nothing is asked)
--   {2, a}     bad argument: the check at ARGV[a] does not add up

if not redis.acl_check_cmd then
  return {1}
end
local refused = {1}
local i, check = 1, 0
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  if not n or n < 1 or i + n > #ARGV then
    return {2, i}
  end
  check = check + 1
  local words = {}
  for j = 1, n do
    words[j] = ARGV[i + j]
  end
  if not redis.acl_check_cmd(unpack(words)) then
    refused[#refused + 1] = check
  end
  i = i + n + 1
end
return refused
