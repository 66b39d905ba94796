package watcher

import (
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/script"
)

// How the commit tells an outage, waited out, from an error of the script
// on an event, counted against that event.

// maxScriptErrors is how many times an event's commit may fail with a
// script error before it is dead-lettered instead.
const maxScriptErrors = 3

// scriptFailed counts a script error of it's commit; it reports whether to
// try again: as a commit up to maxScriptErrors times, then as a
// dead-letter, then never (the event stays in the taken list, logged).
//
// A refusal of the ACL is never the event's fault, nor an outage: the
// event stays in the taken list at once, never dead-lettered, and is
// replayed once the rule is fixed (`resc run` stops at the first refusal,
// naming the command, key or channel). commit.lua checks its commands
// before it writes and Redis checks its keys before it runs, so nothing of
// the event was written.
func (w *Watcher) scriptFailed(it *item, err error) (again bool) {
	if script.IsNoPermission(err) {
		w.log.Error("Redis refused the commit to the ACL user: event left in the taken list, nothing written", "event", short(it.event), "taken", w.taken, "err", err)
		it.trace.end("left in the taken list", "permission refused: "+err.Error())
		return false
	}
	it.scriptErrors++
	if it.scriptErrors < maxScriptErrors {
		return true
	}
	if it.outcome != outcomeDead {
		w.log.Error("commit script keeps failing on this event: dead-lettering it", "event", short(it.event), "err", err)
		it.deadLetter("commit script failed: " + err.Error())
		it.scriptErrors = 0
		return true
	}
	w.log.Error("cannot commit nor dead-letter this event: it stays in the taken list", "event", short(it.event), "taken", w.taken, "err", err)
	it.trace.end("left in the taken list", "commit script failed: "+err.Error())
	return false
}

// isOutage tells a Redis that cannot answer now (network errors, timeouts,
// a server loading, busy, read-only or out of memory), which is waited out,
// from an error of the script itself.
func isOutage(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return true
	}
	return isOutageReply(re.Error())
}

// isOutageReply tells an error reply of Redis that means it cannot answer
// now. An error caught inside a script may carry the script's location
// first (":1: OOM ...", "@user_script: 12: OOM ..."): the code is then the
// first word after it.
func isOutageReply(msg string) bool {
	for {
		for _, p := range [...]string{"LOADING", "BUSY", "READONLY", "MASTERDOWN", "OOM", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"} {
			if strings.HasPrefix(msg, p+" ") || msg == p {
				return true
			}
		}
		i := strings.Index(msg, ": ")
		if i < 0 || strings.ContainsRune(msg[:i], ' ') {
			return false // no location prefix left
		}
		msg = msg[i+2:]
	}
}
