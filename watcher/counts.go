package watcher

import (
	"sync/atomic"

	"github.com/resc-go/resc/internal/counts"
)

// liveCounts are what a watcher counts as it works, since it started;
// Counts reads them into a snapshot (counts.Watcher), the one shape its
// replica publishes and its metrics report.
type liveCounts struct {
	Taken        atomic.Int64 // events taken from the input queue
	Committed    atomic.Int64 // events committed (their tasks pushed)
	TasksPushed  atomic.Int64 // tasks pushed to their queue
	TasksDeduped atomic.Int64 // tasks not pushed: already in their set
	NotOwned     atomic.Int64 // commits refused: event no longer in the taken list
	DeadLettered atomic.Int64 // events sent to the dead-letter list
	Retried      atomic.Int64 // events scheduled again after a failed fetch
	HandedBack   atomic.Int64 // events moved back to the input queue (start and stop)
}

// Counts returns a snapshot of what the watcher counted since it started;
// safe to call while it runs. Rules lists every rule of its ruleset;
// per-rule matches and per-queue tasks are counted only with a
// MeterProvider (Options).
func (w *Watcher) Counts() counts.Watcher {
	s := &w.stats
	c := counts.Watcher{
		InputQueue: w.cfg.InputQueue,
		Taken:      s.Taken.Load(), Handled: s.Committed.Load(), DeadLettered: s.DeadLettered.Load(),
		Retried: s.Retried.Load(), NotOwned: s.NotOwned.Load(), HandedBack: s.HandedBack.Load(),
		Pushed: s.TasksPushed.Load(), Deduplicated: s.TasksDeduped.Load(),
		Rules: make([]counts.Rule, len(w.rules.Rules())), Queues: []counts.Queue{},
	}
	for i, r := range w.rules.Rules() {
		c.Rules[i] = counts.Rule{Index: i, Name: r.Name()}
	}
	if m := w.metrics; m != nil {
		for i := range m.matches {
			c.Rules[i].Matches = m.matches[i].Load()
		}
		c.Queues = m.queueCounts()
	}
	return c
}
