package watcher

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/script"
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
	var r rounds
	for len(pending) > 0 {
		pending = w.commitRound(work, pending, now, &r)
		if len(pending) > 0 && !w.nextRound(work, &r) {
			// Work is over: these events stay in the taken list and are
			// handed back. A commit that did run although its reply was
			// lost removed its event already, and the fenced hand-back
			// then moves nothing.
			return append(leftover, pending...)
		}
	}
	return leftover
}

// rounds is what the rounds of one commitBatch have found so far.
type rounds struct {
	// failures counts the rounds that failed, noScripts the rounds in a
	// row answered NOSCRIPT.
	failures, noScripts int
	// single is set by a script error of a call of many events: from then
	// on each event has a call of its own, so that an error is counted
	// against the event that causes it, not against its whole batch.
	single bool
	// noScript and failed are the last round's: a call was answered
	// NOSCRIPT; an outage or a script error calls for a wait.
	noScript, failed bool
}

// commitRound sends pending in one pipeline of commit.lua calls and reads
// the replies; it returns the events to send again.
func (w *Watcher) commitRound(work context.Context, pending []*item, now time.Time, r *rounds) (retry []*item) {
	r.noScript, r.failed = false, false
	for _, it := range pending {
		it.trace.startCommit(it.tasks, commitMode(it))
	}
	calls := w.commitCalls(pending, now, r.single)
	pipe := w.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i := range calls {
		cmds[i] = calls[i].command(work, w.opts.Dialect)
		_ = pipe.Process(work, cmds[i])
	}
	start := time.Now()
	_, _ = pipe.Exec(work) // errors are read per command below
	w.metrics.commitDone(work, time.Since(start))
	for i, cmd := range cmds {
		retry = w.readCall(work, calls[i].items, cmd, r, retry)
	}
	w.releaseCalls()
	if !r.failed {
		w.outage.OK()
	}
	return retry
}

// readCall reads the reply of one commit.lua call of items and appends to
// retry the events to send again.
func (w *Watcher) readCall(work context.Context, items []*item, cmd *redis.Cmd, r *rounds, retry []*item) []*item {
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
				w.failed(work, r, it.outage)
				it.outage = nil
			}
		}
	case script.IsNoScript(err):
		r.noScript = true
		retry = append(retry, items...)
	case isOutage(err) && !errors.Is(err, errBadReply):
		w.failed(work, r, err)
		retry = append(retry, items...)
	case len(items) > 1:
		// The script failed on one of these events: not an outage.
		// The events before it in the call may be committed: sent
		// again alone, they are found not owned and nothing is
		// written twice.
		w.log.Warn("commit script failed on a batch: committing its events one by one", "events", len(items), "err", err)
		r.single = true
		retry = append(retry, items...)
	default:
		// The script failed on this event: retrying forever would
		// stall the watcher behind it.
		r.failed = true
		if w.scriptFailed(items[0], err) {
			retry = append(retry, items[0])
		}
	}
	return retry
}

// failed notes an outage in this round: logged while work goes on.
func (w *Watcher) failed(work context.Context, r *rounds, err error) {
	r.failed = true
	if work.Err() == nil {
		w.outage.Fail(err)
	}
}

// nextRound prepares the next round after one that left events to send
// again: it loads the script after a NOSCRIPT, and waits with backoff after
// a failure. It reports false when work ended first.
func (w *Watcher) nextRound(work context.Context, r *rounds) bool {
	if r.noScript {
		// A second NOSCRIPT round in a row (a proxy spreading
		// connections over several servers?) waits like a failure.
		r.noScripts++
		r.failed = r.failed || r.noScripts > 1
		if err := commitScript.Load(work, w.opts.Dialect, w.rdb); err != nil {
			w.failed(work, r, err)
		}
	} else {
		r.noScripts = 0
	}
	if !r.failed {
		return true
	}
	r.failures++
	return backoff.Sleep(work, backoff.Delay(r.failures))
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
