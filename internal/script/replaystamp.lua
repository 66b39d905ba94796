-- ReplayStamp prelude (internal/script): the crash replay count an entry
-- carries, "\0resc:replays=<n>\0<event>", as keyspace.StampReplays writes
-- it and keyspace.Unstamp reads it (the same rules: 1 to 9 digits).
--   unstamp(entry)      the event and its count; the entry and 0 when it
--                       has no well-formed stamp
--   stamp(n, event)     the entry of event replayed n times
local function unstamp(entry)
  if string.byte(entry, 1) ~= 0 or string.sub(entry, 1, 14) ~= '\0resc:replays=' then
    return entry, 0
  end
  local close = string.find(entry, '\0', 15, true)
  if not close or close == 15 or close > 24 then
    return entry, 0
  end
  local digits = string.sub(entry, 15, close - 1)
  if not string.find(digits, '^%d+$') then
    return entry, 0
  end
  return string.sub(entry, close + 1), tonumber(digits)
end
local function stamp(n, event)
  return '\0resc:replays=' .. string.format('%d', n) .. '\0' .. event
end
