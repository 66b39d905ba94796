package replica

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/resc-go/resc/membership"
	"github.com/resc-go/resc/rules"
	"github.com/resc-go/resc/watcher"
)

func (r *Replica) running(i int, w *watcher.Watcher) {
	r.countsMu.Lock()
	defer r.countsMu.Unlock()
	r.counts[i].running = w
}

func (r *Replica) ended(i int, w *watcher.Watcher) {
	r.countsMu.Lock()
	defer r.countsMu.Unlock()
	c := &r.counts[i]
	c.ended = c.ended.Add(w.Counts())
	c.running = nil
}

// Counters are the replica's counts since it started, as it publishes
// them for the console.
func (r *Replica) Counters() membership.Counters {
	r.countsMu.Lock()
	defer r.countsMu.Unlock()
	out := membership.Counters{Time: time.Now().UTC(), Watchers: make([]membership.WatcherCounters, len(r.counts))}
	for i, wc := range r.counts {
		c := wc.ended
		if wc.running != nil {
			c = c.Add(wc.running.Counts())
		}
		out.Watchers[i] = publishedCounts(r.o.Config.Watchers[i].InputQueue, r.o.Rules[i].Rules(), c)
	}
	return out
}

func publishedCounts(input string, rs []*rules.Rule, c watcher.Counts) membership.WatcherCounters {
	w := membership.WatcherCounters{
		InputQueue: input, Taken: c.Taken, Handled: c.Handled, DeadLettered: c.DeadLettered,
		Retried: c.Retried, NotOwned: c.NotOwned, HandedBack: c.HandedBack,
		Rules: make([]membership.RuleCount, len(rs)), Queues: []membership.QueueCounts{},
	}
	for i, rule := range rs {
		w.Rules[i] = membership.RuleCount{Index: i, Name: rule.Name()}
		if i < len(c.Matches) {
			w.Rules[i].Matches = c.Matches[i]
		}
	}
	for _, q := range slices.Sorted(maps.Keys(c.Queues)) {
		qc := c.Queues[q]
		w.Queues = append(w.Queues, membership.QueueCounts{Queue: q, Pushed: qc.Pushed, Deduplicated: qc.Deduplicated})
	}
	return w
}

// publishCounters publishes the counters every membership.CountersInterval
// until ctx is done; serve publishes them once more when the watchers have
// stopped.
func (r *Replica) publishCounters(ctx context.Context) {
	t := time.NewTicker(membership.CountersInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.publish(ctx)
		}
	}
}

// publish publishes the counters once. A failure is logged at debug
// level: an outage is reported by the watchers already.
func (r *Replica) publish(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := membership.PublishCounters(ctx, r.o.Redis, r.cs.Prefix, r.o.ID, r.Counters()); err != nil {
		r.log.Debug("publishing counters", "err", err)
	}
}
