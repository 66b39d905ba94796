-- TypeCheck prelude (internal/script): inserted after the "#!lua" line of
-- the scripts that ask for it, so that every script checks the type of a
-- key before it writes (STYLE.md, habit 4) the same way.
--   type_of(key)    the key's Redis type: 'none', 'string', 'list', ...
--   is(key, want)   whether the key is of type want or does not exist
local function type_of(key)
  local t = redis.call('TYPE', key)
  return t.ok or t
end
local function is(key, want)
  local t = type_of(key)
  return t == want or t == 'none'
end
