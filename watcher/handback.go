package watcher

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/resc-go/resc/internal/backoff"
)

// handBackBudget is the most bytes one handback.lua call moves, beyond its
// first event: a taken list of big events moves in several calls, each
// short, so that no call holds Redis past a bound (nor this replica's
// lease renewal behind it).
const handBackBudget = 4 << 20

// replayTaken moves every event of this replica's taken list back to the
// input queue, as resc does on start: they were taken by an earlier run of
// this replica that did not finish them. It retries until ctx is done.
func (w *Watcher) replayTaken(ctx context.Context) error {
	const chunk = 1000
	total, attempt := int64(0), 0
	for {
		r, err := handbackScript.Run(ctx, w.opts.Dialect, w.rdb, []string{w.taken, w.cfg.InputQueue}, "all", chunk, handBackBudget).Int64Slice()
		if err == nil && len(r) != 2 {
			err = fmt.Errorf("watcher: unexpected reply of handback.lua: %v", r)
		}
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
		total += r[0]
		if r[1] == 0 || r[0] == 0 {
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
	// Parts of at most a thousand events and about handBackBudget bytes,
	// sent newest part first: each call RPUSHes its events newest first,
	// so the oldest of all ends rightmost, taken next.
	const chunk = 1000
	var parts [][]string
	for start := 0; start < len(events); {
		end, bytes := start, 0
		for end < len(events) && end-start < chunk && (end == start || bytes < handBackBudget) {
			bytes += len(events[end])
			end++
		}
		parts = append(parts, events[start:end])
		start = end
	}
	left := len(events)
	for i := len(parts) - 1; i >= 0; i-- {
		part := parts[i]
		args := make([]any, 0, len(part)+1)
		args = append(args, "these")
		for _, ev := range part {
			args = append(args, ev)
		}
		n, err := handbackScript.Run(ctx, w.opts.Dialect, w.rdb, []string{w.taken, w.cfg.InputQueue}, args...).Int64()
		if err != nil {
			w.log.Error("cannot hand back unfinished events: they stay in the taken list and are replayed when this replica id starts again",
				"taken", w.taken, "events", left, "err", err)
			return
		}
		left -= len(part)
		w.stats.HandedBack.Add(n)
		w.log.Warn("handed back unfinished events to the input queue", "events", n)
	}
}
