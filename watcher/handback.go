package watcher

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/consumer"
)

// The hand-back is the reliable consumer's, shared with the worker SDK
// (internal/consumer: handback.lua, its byte budget).
var handbackScript = consumer.HandbackScript

// handBackBudget is the most bytes one handback.lua call moves, beyond its
// first event (consumer.ScriptBudget).
const handBackBudget = consumer.ScriptBudget

// replayTaken moves every event of this replica's taken list back to the
// input queue, as resc does on start: they were taken by an earlier run of
// this replica that did not finish them. It retries until ctx is done.
func (w *Watcher) replayTaken(ctx context.Context) error {
	total, attempt := int64(0), 0
	for {
		moved, left, err := consumer.HandBackAll(ctx, w.rdb, w.opts.Dialect, w.taken, w.cfg.InputQueue)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.outage.Fail(err)
			attempt++
			if !backoff.Sleep(ctx, backoff.Delay(attempt)) {
				return ctx.Err()
			}
			continue
		}
		w.outage.OK()
		attempt = 0
		total += moved
		if left == 0 || moved == 0 {
			break
		}
	}
	if total > 0 {
		w.stats.HandedBack.Add(total)
		w.log.Warn("replayed events left in this replica's taken list (by an earlier run, or by a take whose reply was lost)", "taken", w.taken, "events", total)
	}
	return nil
}

// handBack moves events this replica could not finish back to the input
// queue, oldest first, fenced like a commit: an event no longer in the taken
// list is not moved. ctx is done by now: it runs on a fresh context of ten
// seconds.
func (w *Watcher) handBack(ctx context.Context, items []*item) {
	if len(items) == 0 {
		return
	}
	for _, it := range items {
		it.trace.end("handed back", "unfinished at shutdown: back in the input queue")
	}
	// Oldest taken first, whatever order their work ended in.
	slices.SortFunc(items, func(a, b *item) int { return cmp.Compare(a.seq, b.seq) })
	events := make([]string, len(items))
	for i, it := range items {
		events[i] = it.raw()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	n, err := consumer.HandBack(ctx, w.rdb, w.opts.Dialect, w.taken, w.cfg.InputQueue, events)
	w.stats.HandedBack.Add(n)
	if err != nil {
		w.log.Error("cannot hand back unfinished events: they stay in the taken list and are replayed when this replica id starts again",
			"taken", w.taken, "events", len(events)-int(n), "err", err)
		return
	}
	w.log.Warn("handed back unfinished events to the input queue", "events", n)
}
