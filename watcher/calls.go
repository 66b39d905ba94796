package watcher

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/consumer"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

// The layout of commit.lua's calls: KEYS and ARGV (see the script's
// header) for a batch of items.

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
// that a call's time does not grow with the size of the batch. It is the
// byte budget of every script call (consumer.ScriptBudget).
const maxCallBytes = consumer.ScriptBudget

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

// command returns the EVALSHA command of c for a server of dialect d.
func (c *commitCall) command(ctx context.Context, d script.Dialect) *redis.Cmd {
	c.cmd = commitScript.Args(c.cmd, d, c.keys, c.args...)
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
