package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

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

// commitBatch commits a batch of ready events, retrying with backoff
// through Redis errors until work is done. The whole batch is one commit.lua
// call (or a few, when it is large: see maxCallArgs) in one pipeline: the
// script's call overhead is paid per batch, while each event is still
// fenced and committed on its own. It returns the events it could not
// commit (abandoned, or still failing when work ended).
func (w *Watcher) commitBatch(work context.Context, batch []*item) (leftover []*item) {
	pending := make([]*item, 0, len(batch))
	for _, it := range batch {
		if it.outcome == outcomeHandBack {
			leftover = append(leftover, it)
			continue
		}
		if it.outcome == outcomeCommit {
			if why := badDestination(it); why != "" {
				it.deadLetter(why)
			}
		}
		pending = append(pending, it)
	}
	now := w.opts.Now()
	failures, noScripts := 0, 0
	// single is set by a script error of a call of many events: from then
	// on each event has a call of its own, so that an error is counted
	// against the event that causes it, not against its whole batch.
	single := false
	for len(pending) > 0 {
		for _, it := range pending {
			it.trace.startCommit(it.tasks, commitMode(it))
		}
		calls := w.commitCalls(pending, now, single)
		sha := commitScript.Hash(w.opts.Dialect)
		pipe := w.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(calls))
		for i := range calls {
			cmds[i] = calls[i].command(work, sha)
			_ = pipe.Process(work, cmds[i])
		}
		start := time.Now()
		_, _ = pipe.Exec(work) // errors are read per command below
		w.metrics.commitDone(work, time.Since(start))

		retry := pending[:0:0]
		noScript, failed := false, false
		for i, cmd := range cmds {
			items := calls[i].items
			values, err := cmd.Slice()
			var replies []commitReply
			if err == nil {
				replies, err = parseReplies(values, len(items))
			}
			switch {
			case err == nil:
				for j, it := range items {
					if !w.handleReply(work, it, replies[j]) {
						continue
					}
					retry = append(retry, it) // e.g. a bad destination: now dead-letter it
					if it.outage != nil {
						failed = true
						if work.Err() == nil {
							w.outage.Fail(it.outage)
						}
						it.outage = nil
					}
				}
			case script.IsNoScript(err):
				noScript = true
				retry = append(retry, items...)
			case isOutage(err) && !errors.Is(err, errBadReply):
				failed = true
				if work.Err() == nil {
					w.outage.Fail(err)
				}
				retry = append(retry, items...)
			case len(items) > 1:
				// The script failed on one of these events: not an outage.
				// The events before it in the call may be committed: sent
				// again alone, they are found not owned and nothing is
				// written twice.
				w.log.Warn("commit script failed on a batch: committing its events one by one", "events", len(items), "err", err)
				single = true
				retry = append(retry, items...)
			default:
				// The script failed on this event: retrying forever would
				// stall the watcher behind it.
				failed = true
				if w.scriptFailed(items[0], err) {
					retry = append(retry, items[0])
				}
			}
		}
		w.releaseCalls()
		if !failed {
			w.outage.OK()
		}
		pending = retry
		if len(pending) == 0 {
			break
		}
		if noScript {
			// A second NOSCRIPT round in a row (a proxy spreading
			// connections over several servers?) waits like a failure.
			noScripts++
			failed = failed || noScripts > 1
			if err := commitScript.Load(work, w.opts.Dialect, w.rdb); err != nil {
				failed = true
				if work.Err() == nil {
					w.outage.Fail(err)
				}
			}
		} else {
			noScripts = 0
		}
		if failed {
			failures++
			if !backoff.Sleep(work, backoff.Delay(failures)) {
				// Work is over: these events stay in the taken list and are
				// handed back. A commit that did run although its reply was
				// lost removed its event already, and the fenced hand-back
				// then moves nothing.
				return append(leftover, pending...)
			}
		}
	}
	return leftover
}

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

// Arguments of commit.lua boxed once: a string or an int64 put in an
// interface allocates. Per event, strings are passed as *string (pointing
// into the item and its tasks, alive until the commit returns), which
// go-redis writes as the string and which an interface holds without
// allocating.
var (
	argCommit any = "commit"
	argDead   any = "dead"
	argRetry  any = "retry"
	argSet    any = "1"
	argNoSet  any = "0"
	argEmpty  any = ""
	argBusy   any = "busy"
	argDetail any = "d"
	// argPerm and argDetailPerm add the permission check (ARGV[4] 'p').
	argPerm       any = "p"
	argDetailPerm any = "dp"
	argFlags          = [4]any{"", "f", "t", "ft"}
)

// maxCallArgs bounds the arguments of one commit.lua call: a batch of
// events making many tasks each is split over several calls (in the same
// pipeline), so that no single call holds Redis for long.
const maxCallArgs = 8192

// maxCallBytes bounds the bytes of events and tasks one commit.lua call
// carries, beyond its first event: a batch of big events is split too, so
// that a call's time does not grow with the size of the batch.
const maxCallBytes = 4 << 20

// commitCall is one commit.lua call: the events it commits, in order, and
// its KEYS and ARGV (see the script's header), each a string or a *string.
type commitCall struct {
	items []*item
	keys  []any
	args  []any
	cmd   []any // the EVALSHA command (see command)
	// bytes counts the bytes of its events and tasks
	bytes int
}

// command returns the EVALSHA command of c, the script known by sha.
func (c *commitCall) command(ctx context.Context, sha string) *redis.Cmd {
	c.cmd = append(c.cmd[:0], "evalsha", sha, len(c.keys))
	c.cmd = append(c.cmd, c.keys...)
	c.cmd = append(c.cmd, c.args...)
	return redis.NewCmd(ctx, c.cmd...)
}

// commitCalls lays out the commit.lua calls committing items: one call
// for all of them unless they are many (maxCallArgs) or big
// (maxCallBytes), or one per item when
// single. The calls, and their slices, are those of the previous round
// reused (the slices of a commit round are the bulk of what one replica
// allocates): they are valid until the next call, which only commitBatch
// makes, from the one goroutine that commits.
func (w *Watcher) commitCalls(items []*item, now time.Time, single bool) []commitCall {
	calls := w.calls[:0]
	var c *commitCall
	for _, it := range items {
		if c == nil || single || len(c.args) >= maxCallArgs || c.bytes >= maxCallBytes {
			calls = slices.Grow(calls, 1)[:len(calls)+1]
			c = &calls[len(calls)-1]
			w.startCall(c, now, len(items))
		}
		w.appendItem(c, it, now)
	}
	w.calls = calls
	return calls
}

// releaseCalls drops what the calls of the last round point to, so that
// reused slices keep no event alive.
func (w *Watcher) releaseCalls() {
	for i := range w.calls {
		c := &w.calls[i]
		clear(c.items[:cap(c.items)])
		clear(c.keys[:cap(c.keys)])
		clear(c.args[:cap(c.args)])
		clear(c.cmd[:cap(c.cmd)])
	}
}

// startCall starts c, a commit.lua call with room for about n events of
// one task each (its slices kept when large enough).
func (w *Watcher) startCall(c *commitCall, now time.Time, n int) {
	detail := argEmpty
	switch {
	case w.metrics != nil && w.opts.CheckPermissions:
		detail = argDetailPerm
	case w.metrics != nil:
		detail = argDetail // the per-task detail is wanted (so it is when tracing: appendItem)
	case w.opts.CheckPermissions:
		detail = argPerm
	}
	n = min(n, maxCallArgs/6+1)
	if cap(c.items) < n {
		c.items, c.keys, c.args = make([]*item, 0, n), make([]any, 0, 5+2*n), make([]any, 0, 11+6*n)
	}
	c.items, c.keys, c.args, c.bytes = c.items[:0], c.keys[:4], c.args[:11], 0
	c.keys[0], c.keys[1], c.keys[2], c.keys[3] = &w.taken, &w.dead, &w.attempts, &w.sched
	if w.stream != "" {
		c.keys = append(c.keys, &w.stream)
	}
	c.args[10] = w.streamLenArg
	c.args[0], c.args[1], c.args[2], c.args[3], c.args[4] = now.Unix(), w.channelArg, w.takenQueueArg, detail, w.traceTTL
	r := &w.opts.Retry
	c.args[5], c.args[6], c.args[7], c.args[8], c.args[9] = now.UnixMilli(), r.Attempts, r.Delay.Milliseconds(), r.MaxDelay.Milliseconds(), r.AttemptsTTL.Milliseconds()
}

// appendItem adds it's record, and the keys it names, to c.
func (w *Watcher) appendItem(c *commitCall, it *item, now time.Time) {
	c.items = append(c.items, it)
	it.entry = it.raw() // the fence's argument, boxed from the item
	c.bytes += len(it.entry)
	for i := range it.tasks {
		c.bytes += len(it.tasks[i].Task)
	}
	flags := 0
	if it.fetched {
		flags |= 1 // it may have fetch attempts to forget
	}
	traced := it.trace != nil
	if traced {
		flags |= 2
		c.args[3] = argDetail
		c.keys = append(c.keys, keyspace.TraceContext(w.opts.Prefix, w.cfg.InputQueue, it.event))
	}
	switch commitMode(it) {
	case "dead":
		c.args = append(c.args, &it.entry, argDead, argFlags[flags], 1, w.deadEntry(it, now))
		return
	case "retry":
		busy := argEmpty
		if it.outcome == outcomeRetryBusy {
			busy = argBusy
		}
		c.args = append(c.args, &it.entry, argRetry, argFlags[flags], 2, w.scheduleTag(it), busy)
		return
	}
	per := 2
	if traced {
		per = 3
	}
	c.args = append(c.args, &it.entry, argCommit, argFlags[flags], per*len(it.tasks))
	for i := range it.tasks {
		t := &it.tasks[i]
		c.keys = append(c.keys, &t.Queue)
		set := argNoSet
		if t.HasSet {
			c.keys = append(c.keys, &t.Set)
			set = argSet
		}
		c.args = append(c.args, &t.Task, set)
		if traced {
			c.keys = append(c.keys, keyspace.TraceContext(w.opts.Prefix, t.Queue, t.Task))
			c.args = append(c.args, it.trace.taskParent(i))
		}
	}
}

// commitMode is commit.lua's mode for it.
func commitMode(it *item) string {
	switch it.outcome {
	case outcomeDead:
		return "dead"
	case outcomeRetry, outcomeRetryBusy:
		return "retry"
	}
	return "commit"
}

// scheduleTag makes the delay schedule member of it unique: two replicas
// may schedule the same event text in the same millisecond.
func (w *Watcher) scheduleTag(it *item) string {
	return strconv.FormatInt(w.opts.Now().UnixMilli(), 10) + "-f" + w.runTag + "-" + strconv.FormatUint(it.seq, 36)
}

func (w *Watcher) deadEntry(it *item, now time.Time) string {
	e := deadletter.NewEntry(it.event, w.cfg.InputQueue, it.reason, w.opts.Replica, now, it.attempts)
	if a := it.aside; a != nil {
		e.Event, e.EventBase64 = strings.ToValidUTF8(it.event, "\uFFFD"), ""
		e.EventBytes, e.EventKey, e.EventField = a.size, w.oversized, a.field
	}
	if it.trace != nil && it.trace.span != nil {
		e.TraceID = it.trace.span.SpanContext().TraceID().String()
	}
	return e.JSON()
}

// commitReply is commit.lua's reply for one event.
type commitReply struct {
	code, n, deduped int64
	detail           string
}

// errBadReply is a commit.lua reply the watcher cannot read: an error of
// the script (or of a proxy), not an outage.
var errBadReply = errors.New("commit script: unexpected reply")

// parseReplies reads commit.lua's reply: four values per event (see its
// header).
func parseReplies(values []any, events int) ([]commitReply, error) {
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
		deduped := reply.deduped
		if detail == "" && len(it.tasks) == 1 {
			// Not sent for a single task: n says it.
			detail = "0"
			if n == 1 {
				detail = "1"
			}
		}
		// The trace ends before the counters move: whoever waits on the
		// counters then finds the event's spans ended.
		it.trace.committed(detail)
		w.stats.Committed.Add(1)
		w.stats.TasksPushed.Add(n)
		w.stats.TasksDeduped.Add(deduped)
		w.metrics.tasks(it.tasks, detail)
		if w.log.Enabled(ctx, slog.LevelInfo) {
			for i, t := range it.tasks {
				w.log.Info(taskLogMsg(detail, i, n, deduped), "event", short(it.event), "rule", t.Rule, "task", short(t.Task), "to", t.Queue, "set", t.Set)
			}
			w.log.Info("event done", "event", short(it.event), "pushed", n, "deduplicated", deduped)
		}
	case codeNotOwned:
		it.trace.end("not owned", "the event was replayed elsewhere: nothing pushed")
		w.stats.NotOwned.Add(1)
		w.log.Warn("event no longer in this replica's taken list (replayed elsewhere): nothing pushed", "event", short(it.event), "taken", w.taken)
	case codeBadDestination:
		it.deadLetter(detail)
		return true
	case codeScriptError:
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

// commitLoop commits ready events in batches until ready is closed: all
// the events ready, up to the concurrency, in one round trip. It returns
// the events it could not commit before work was done.
func (w *Watcher) commitLoop(work context.Context, ready <-chan []*item, slots chan struct{}) (leftover []*item) {
	batch := make([]*item, 0, w.cfg.Concurrency)
	for items := range ready {
		batch = append(batch[:0], items...)
	fill:
		for len(batch) < w.cfg.Concurrency {
			select {
			case items, ok := <-ready:
				if !ok {
					break fill
				}
				batch = append(batch, items...)
			default:
				break fill
			}
		}
		w.commitMu.Lock()
		leftover = append(leftover, w.commitBatch(work, batch)...)
		for range batch {
			<-slots
		}
		w.queued.Add(-int64(len(batch)))
		w.commitMu.Unlock()
	}
	return leftover
}
