package watcher

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

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
)

// DeadEntry is one entry of a dead-letter list "<input_queue>/dead", stored
// as JSON.
type DeadEntry struct {
	// Event is the event. When it is not valid UTF-8, JSON cannot hold it
	// as it is: Event then has the invalid bytes replaced and EventBase64
	// holds the exact bytes.
	Event       string `json:"event"`
	EventBase64 string `json:"event_base64,omitempty"`
	// Queue is the input queue the event came from.
	Queue string `json:"queue"`
	// Reason says why the event could not be handled.
	Reason string `json:"reason"`
	// Replica is the replica that gave up on the event.
	Replica string `json:"replica"`
	// Time is when, in RFC 3339 UTC.
	Time string `json:"time"`
	// Attempts is, for an event whose fetch kept failing, how many times it
	// was attempted.
	Attempts int `json:"attempts,omitempty"`
}

// commitBatch commits a batch of ready events in one pipeline, retrying
// with backoff through Redis errors until work is done. It returns the
// events it could not commit (abandoned, or still failing when work ended).
func (w *Watcher) commitBatch(work context.Context, batch []*item) (leftover []*item) {
	pending := make([]*item, 0, len(batch))
	for _, it := range batch {
		if it.abandoned {
			leftover = append(leftover, it)
			continue
		}
		if it.dead == "" {
			it.dead = badDestination(it)
		}
		pending = append(pending, it)
	}
	now := w.opts.Now()
	failures, noScripts := 0, 0
	for len(pending) > 0 {
		pipe := w.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(pending))
		for i, it := range pending {
			it.trace.startCommit(it.tasks, commitMode(it))
			keys, args := w.scriptArgs(it, now)
			cmds[i] = commitScript.EvalSha(work, w.opts.Dialect, pipe, keys, args...)
		}
		start := time.Now()
		_, _ = pipe.Exec(work) // errors are read per command below
		w.metrics.commitDone(work, time.Since(start))

		retry := pending[:0:0]
		noScript, failed := false, false
		for i, cmd := range cmds {
			it := pending[i]
			reply, err := cmd.Slice()
			switch {
			case err == nil:
				if w.handleReply(work, it, reply) {
					retry = append(retry, it) // bad destination: now dead-letter it
				}
			case script.IsNoScript(err):
				noScript = true
				retry = append(retry, it)
			case isOutage(err):
				failed = true
				if work.Err() == nil {
					w.outage.Fail(err)
				}
				retry = append(retry, it)
			default:
				// The script itself failed on this event: not an outage, and
				// retrying forever would stall the watcher behind it.
				failed = true
				if w.scriptFailed(it, err) {
					retry = append(retry, it)
				}
			}
		}
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
func (w *Watcher) scriptFailed(it *item, err error) (again bool) {
	it.scriptErrors++
	if it.scriptErrors < maxScriptErrors {
		return true
	}
	if it.dead == "" {
		w.log.Error("commit script keeps failing on this event: dead-lettering it", "event", short(it.event), "err", err)
		it.dead, it.scriptErrors = "commit script failed: "+err.Error(), 0
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
	msg := re.Error()
	for _, p := range [...]string{"LOADING", "BUSY", "READONLY", "MASTERDOWN", "OOM", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
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

// Arguments of commit.lua boxed once: a string or an int64 put in an
// interface allocates, per event.
var (
	argModes     = map[string]any{"commit": "commit", "dead": "dead", "retry": "retry"}
	argSet   any = "1"
	argNoSet any = "0"
	argEmpty any = ""
	argBusy  any = "busy"
	argFlags     = [4]any{"", "f", "d", "fd"}
)

// scriptArgs lays out commit.lua's KEYS and ARGV for it (see its header):
// only the keys and arguments this call needs, since every key costs an
// allocation and a few bytes on the wire per event.
func (w *Watcher) scriptArgs(it *item, now time.Time) ([]string, []any) {
	mode := commitMode(it)
	flags := 0
	if it.fetched {
		flags |= 1 // it may have fetch attempts to forget
	}
	if it.trace != nil || w.metrics != nil {
		flags |= 2 // the per-task detail is wanted
	}
	traceTTL := argEmpty
	keys := make([]string, 2, 5+3*len(it.tasks))
	keys[0], keys[1] = w.taken, w.dead
	if it.fetched || mode == "retry" {
		keys = append(keys, w.attempts)
	}
	if mode == "retry" {
		keys = append(keys, w.sched)
	}
	if it.trace != nil {
		traceTTL = w.traceTTL
		keys = append(keys, keyspace.TraceContext(w.opts.Prefix, w.cfg.InputQueue, it.event))
	}
	if sec := now.Unix(); sec != w.nowSec || w.nowArg == nil {
		w.nowSec, w.nowArg = sec, sec
	}
	args := make([]any, 7, 8+3*len(it.tasks))
	args[0], args[1], args[2], args[3], args[4], args[5], args[6] = it.event, w.nowArg, w.channelArg, w.takenQueueArg, argModes[mode], argFlags[flags], traceTTL
	switch mode {
	case "dead":
		return keys, append(args, w.deadEntry(it, now))
	case "retry":
		r := &w.opts.Retry
		busy := argEmpty
		if it.busy {
			busy = argBusy
		}
		return keys, append(args, now.UnixMilli(), r.Attempts, r.Delay.Milliseconds(), r.MaxDelay.Milliseconds(), r.AttemptsTTL.Milliseconds(), w.scheduleTag(it), busy)
	}
	for i, t := range it.tasks {
		keys = append(keys, t.Queue)
		set := argNoSet
		if t.HasSet {
			keys = append(keys, t.Set)
			set = argSet
		}
		args = append(args, t.Task, set)
		if it.trace != nil {
			keys = append(keys, keyspace.TraceContext(w.opts.Prefix, t.Queue, t.Task))
			args = append(args, it.trace.taskParent(i))
		}
	}
	return keys, args
}

// commitMode is commit.lua's mode for it.
func commitMode(it *item) string {
	switch {
	case it.dead != "":
		return "dead"
	case it.retry != "":
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
	e := DeadEntry{
		Event:    it.event,
		Queue:    w.cfg.InputQueue,
		Reason:   it.dead,
		Replica:  w.opts.Replica,
		Time:     now.UTC().Format(time.RFC3339),
		Attempts: it.attempts,
	}
	if !utf8.ValidString(it.event) {
		e.EventBase64 = base64.StdEncoding.EncodeToString([]byte(it.event))
	}
	b, err := json.Marshal(e)
	if err != nil { // cannot happen: only strings
		panic(err)
	}
	return string(b)
}

// handleReply reads commit.lua's reply for it; it reports whether it must
// be sent again (a bad destination is dead-lettered by a second call, and so
// is an event whose fetch attempts are exhausted).
func (w *Watcher) handleReply(ctx context.Context, it *item, reply []any) (again bool) {
	code := int64(0)
	if len(reply) == 4 {
		code, _ = reply[0].(int64)
	}
	if code == codeBadArgument {
		detail, _ := reply[3].(string)
		it.trace.end("left in the taken list", "commit script: bad argument "+detail)
		w.log.Error("commit script refused its arguments: event left in the taken list", "event", short(it.event), "argument", detail)
		return false
	}
	var n int64
	var detail string
	if code != 0 {
		n, _ = reply[1].(int64)
		detail, _ = reply[3].(string)
	}
	switch code {
	case codeCommitted:
		deduped, _ := reply[2].(int64)
		w.stats.Committed.Add(1)
		w.stats.TasksPushed.Add(n)
		w.stats.TasksDeduped.Add(deduped)
		w.metrics.tasks(it.tasks, detail)
		it.trace.committed(detail)
		if w.log.Enabled(ctx, slog.LevelInfo) {
			for _, t := range it.tasks {
				w.log.Info("-> task", "event", short(it.event), "rule", t.Rule, "task", short(t.Task), "to", t.Queue, "set", t.Set)
			}
			w.log.Info("event done", "event", short(it.event), "pushed", n, "deduplicated", deduped)
		}
	case codeNotOwned:
		w.stats.NotOwned.Add(1)
		it.trace.end("not owned", "the event was replayed elsewhere: nothing pushed")
		w.log.Warn("event no longer in this replica's taken list (replayed elsewhere): nothing pushed", "event", short(it.event), "taken", w.taken)
	case codeBadDestination:
		it.dead = detail
		return true
	case codeDeadLettered:
		w.stats.DeadLettered.Add(1)
		it.trace.end("dead-lettered", it.dead)
		w.log.Warn("event sent to the dead-letter list", "event", short(it.event), "dead", w.dead, "reason", it.dead)
	case codeBadDeadList:
		it.trace.end("left in the taken list", "the dead-letter list has the wrong type")
		w.log.Error("the dead-letter list is not a list: event left in the taken list", "event", short(it.event), "dead", w.dead, "reason", it.dead)
	case codeRetryScheduled:
		w.stats.Retried.Add(1)
		it.trace.end("scheduled again", "fetch failed (attempt "+strconv.FormatInt(n, 10)+"): "+it.retry)
		due, _ := strconv.ParseInt(detail, 10, 64)
		in := time.UnixMilli(due).Sub(w.opts.Now()).Round(time.Millisecond)
		if it.busy {
			w.log.Info("fetch host busy: event scheduled again", "event", short(it.event), "in", in, "reason", it.retry)
		} else {
			w.log.Warn("fetch failed: event scheduled again", "event", short(it.event), "attempt", n, "of", w.opts.Retry.Attempts, "in", in, "reason", it.retry)
		}
	case codeRetryExhausted:
		it.attempts = int(n)
		it.dead = fmt.Sprintf("fetch failed %d times, the last: %s", it.attempts, it.retry)
		return true
	case codeBadRetryKeys:
		it.dead = detail + "; and the fetch failed: " + it.retry
		return true
	default:
		it.trace.end("left in the taken list", "unexpected reply of the commit script")
		w.log.Error("unexpected reply of the commit script: event left in the taken list", "event", short(it.event), "reply", fmt.Sprint(reply))
	}
	return false
}
