package keyspace

import (
	"strconv"
	"strings"
)

// replayStampHead starts an entry stamped with its crash replay count.
const replayStampHead = "\x00resc:replays="

// maxStampDigits bounds the count of a stamp, as the Lua side does.
const maxStampDigits = 9

// StampReplays is the entry recovery pushes back into play for one
// occurrence of event that has now been replayed n times after crashes:
// "\x00resc:replays=<n>\x00<event>". The count travels with the occurrence
// (through the input queue, a taken list, the delay schedule and any
// hand-back), so identical events pushed at other times keep counts of
// their own. Lua's counterpart is the ReplayStamp prelude of
// internal/script.
func StampReplays(n int, event string) string {
	return replayStampHead + strconv.Itoa(n) + "\x00" + event
}

// Unstamp returns the event of an entry of an input queue or taken list,
// and its crash replay count: 0 and the entry itself when it carries no
// well-formed stamp (a producer's event, or one that merely starts like
// a stamp).
func Unstamp(entry string) (event string, replays int) {
	if len(entry) < len(replayStampHead)+2 || entry[0] != 0 || entry[:len(replayStampHead)] != replayStampHead {
		return entry, 0
	}
	rest := entry[len(replayStampHead):]
	n, i := 0, 0
	for ; i < len(rest) && i <= maxStampDigits && rest[i] >= '0' && rest[i] <= '9'; i++ {
		n = n*10 + int(rest[i]-'0')
	}
	if i == 0 || i > maxStampDigits || i >= len(rest) || rest[i] != 0 {
		return entry, 0
	}
	return rest[i+1:], n
}

// setAsideHead starts the entry that stands, in a taken list or an input
// queue, for an event set aside for its size.
const setAsideHead = "\x00resc:oversized="

// SetAsideHeadBytes is how many of an event's first bytes its set-aside
// entry keeps, for the dead-letter entry and the logs.
const SetAsideHeadBytes = 200

// SetAside is the entry that take.lua leaves in the taken list in place of
// an event longer than max_event_bytes, whose bytes it moved to field of
// the hash Oversized: "\x00resc:oversized=<size>:<field>\x00<first bytes>".
// The replica that takes it dead-letters it without reading the event.
func SetAside(size int64, field, head string) string {
	return setAsideHead + strconv.FormatInt(size, 10) + ":" + field + "\x00" + head
}

// ParseSetAside reads an entry written by SetAside (after Unstamp): the
// event's size, its field in Oversized and its first bytes. ok is false
// for any other entry.
func ParseSetAside(event string) (size int64, field, head string, ok bool) {
	rest, found := strings.CutPrefix(event, setAsideHead)
	if !found {
		return 0, "", "", false
	}
	meta, head, found := strings.Cut(rest, "\x00")
	if !found {
		return 0, "", "", false
	}
	n, field, found := strings.Cut(meta, ":")
	size, err := strconv.ParseInt(n, 10, 64)
	if !found || err != nil || size < 0 || field == "" {
		return 0, "", "", false
	}
	return size, field, head, true
}

// Oversized holds the events of one input queue set aside for their size
// (HASH: field an id unique to the event, value its exact bytes), each
// until its dead-letter entry is requeued or dropped:
// "<prefix>oversized:<input_queue>".
func Oversized(prefix, inputQueue string) string {
	return prefix + "oversized:" + inputQueue
}
