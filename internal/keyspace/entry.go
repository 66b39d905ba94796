package keyspace

import "strconv"

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
