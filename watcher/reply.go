package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// commit.lua's replies, and what the watcher does with each.

// Reply codes of commit.lua.
const (
	codeCommitted      = 1
	codeNotOwned       = 2
	codeBadDestination = 3
	codeDeadLettered   = 4
	codeBadDeadList    = 5
	codeRetryExhausted = 6
	codeRetryScheduled = 7
	codeBadRetryKeys   = 8
	codeBadArgument    = 9
	codeScriptError    = 10
)

// commitReply is commit.lua's reply for one event.
type commitReply struct {
	code, n, deduped int64
	detail           string
}

// errBadReply is a commit.lua reply the watcher cannot read: an error of
// the script (or of a proxy), not an outage.
var errBadReply = errors.New("commit script: unexpected reply")

// parseReplies reads commit.lua's reply: its code, then four values per event (see its
// header).
func parseReplies(values []any, events int) ([]commitReply, error) {
	if len(values) == 2 && values[0] == int64(2) {
		return nil, fmt.Errorf("%w: commit.lua refused the call's arguments: %v", errBadReply, values[1])
	}
	if len(values) == 0 || values[0] != int64(1) {
		return nil, fmt.Errorf("%w: code %v", errBadReply, values)
	}
	values = values[1:]
	if len(values) != 4*events {
		return nil, fmt.Errorf("%w: %d values for %d events", errBadReply, len(values), events)
	}
	out := make([]commitReply, events)
	for j := range out {
		r, v := &out[j], values[4*j:4*j+4]
		var ok [4]bool
		r.code, ok[0] = v[0].(int64)
		r.n, ok[1] = v[1].(int64)
		r.deduped, ok[2] = v[2].(int64)
		r.detail, ok[3] = v[3].(string)
		if ok != [4]bool{true, true, true, true} {
			return nil, fmt.Errorf("%w for event %d of %d: %v", errBadReply, j+1, events, v)
		}
	}
	return out, nil
}

// handleReply reads commit.lua's reply for it; it reports whether it must
// be sent again (a bad destination is dead-lettered by a second call, and so
// is an event whose fetch attempts are exhausted).
func (w *Watcher) handleReply(ctx context.Context, it *item, reply commitReply) (again bool) {
	code, n, detail := reply.code, reply.n, reply.detail
	if code == codeBadArgument {
		it.trace.end("left in the taken list", "commit script: bad argument "+detail)
		w.log.Error("commit script refused its arguments: event left in the taken list", "event", short(it.event), "argument", detail)
		return false
	}
	switch code {
	case codeCommitted:
		w.committed(ctx, it, reply)
	case codeNotOwned:
		it.trace.end("not owned", "the event was replayed elsewhere: nothing pushed")
		w.stats.NotOwned.Add(1)
		w.log.Warn("event no longer in this replica's taken list (replayed elsewhere): nothing pushed", "event", short(it.event), "taken", w.taken)
	case codeBadDestination:
		it.deadLetter(detail)
		return true
	case codeScriptError:
		return w.scriptError(it, n, detail)
	case codeDeadLettered:
		it.trace.end("dead-lettered", it.reason)
		w.stats.DeadLettered.Add(1)
		w.log.Warn("event sent to the dead-letter list", "event", short(it.event), "dead", w.dead, "reason", it.reason)
	case codeBadDeadList:
		it.trace.end("left in the taken list", "the dead-letter list has the wrong type")
		w.log.Error("the dead-letter list is not a list: event left in the taken list", "event", short(it.event), "dead", w.dead, "reason", it.reason)
	case codeRetryScheduled:
		it.trace.end("scheduled again", "fetch failed (attempt "+strconv.FormatInt(n, 10)+"): "+it.reason)
		w.stats.Retried.Add(1)
		due, _ := strconv.ParseInt(detail, 10, 64)
		in := time.UnixMilli(due).Sub(w.opts.Now()).Round(time.Millisecond)
		if it.outcome == outcomeRetryBusy {
			w.log.Info("fetch host busy: event scheduled again", "event", short(it.event), "in", in, "reason", it.reason)
		} else {
			w.log.Warn("fetch failed: event scheduled again", "event", short(it.event), "attempt", n, "of", w.opts.Retry.Attempts, "in", in, "reason", it.reason)
		}
	case codeRetryExhausted:
		it.attempts = int(n)
		it.deadLetter(fmt.Sprintf("fetch failed %d times, the last: %s", it.attempts, it.reason))
		return true
	case codeBadRetryKeys:
		it.deadLetter(detail + "; and the fetch failed: " + it.reason)
		return true
	default:
		it.trace.end("left in the taken list", "unexpected reply of the commit script")
		w.log.Error("unexpected reply of the commit script: event left in the taken list", "event", short(it.event), "reply", fmt.Sprint(reply))
	}
	return false
}

// badDestination refuses what Redis would accept but nobody could use: a
// queue or set pattern that produced an empty name (Redis takes "" as a
// key). It returns "" when all is well. Keys used both as a queue and as a
// set are refused by commit.lua itself, which sees every key.
func badDestination(it *item) string {
	for _, t := range it.tasks {
		if t.Queue == "" {
			return fmt.Sprintf("rule %q made task %q for an empty queue name", t.Rule, t.Task)
		}
		if t.Set == "" && t.HasSet {
			return fmt.Sprintf("rule %q made task %q with an empty set name", t.Rule, t.Task)
		}
	}
	return ""
}

// committed counts and logs an event committed (commit.lua's code 1).
func (w *Watcher) committed(ctx context.Context, it *item, reply commitReply) {
	n, deduped, detail := reply.n, reply.deduped, reply.detail
	if detail == "" && len(it.tasks) == 1 {
		// Not sent for a single task: n says it.
		detail = "0"
		if n == 1 {
			detail = "1"
		}
	}
	// The trace ends before the counters move, and the count of events
	// committed moves last: whoever waits on it then finds the event's
	// spans ended and its other counts made.
	it.trace.committed(detail)
	w.stats.TasksPushed.Add(n)
	w.stats.TasksDeduped.Add(deduped)
	w.metrics.tasks(it.tasks, detail)
	w.stats.Committed.Add(1)
	if w.log.Enabled(ctx, slog.LevelInfo) {
		for i, t := range it.tasks {
			w.log.Info(taskLogMsg(detail, i, n, deduped), "event", short(it.event), "rule", t.Rule, "task", short(t.Task), "to", t.Queue, "set", t.Set)
		}
		w.log.Info("event done", "event", short(it.event), "pushed", n, "deduplicated", deduped)
	}
}

// scriptError reads commit.lua's code 10, a command that failed on it
// (detail): it reports whether to send it again.
func (w *Watcher) scriptError(it *item, n int64, detail string) (again bool) {
	switch {
	case isOutageReply(detail):
		// Out of memory half way, on a server without "#!lua" (package
		// script): waited out like any outage.
		it.outage = errors.New(detail)
		return true
	case n == 1 && it.outcome != outcomeDead:
		// It had left the taken list, and some of its tasks may be
		// pushed: committing it again could push them twice.
		w.log.Error("commit script failed on this event after some of its writes: dead-lettering it", "event", short(it.event), "err", detail)
		it.deadLetter("commit script failed after some of its writes: " + detail)
		return true
	}
	return w.scriptFailed(it, errors.New(detail))
}
