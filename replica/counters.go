package replica

import (
	"context"
	"time"

	"github.com/resc-go/resc/internal/counts"
	"github.com/resc-go/resc/membership"
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
	out := membership.Counters{Time: time.Now().UTC(), Watchers: make([]counts.Watcher, len(r.counts))}
	for i, wc := range r.counts {
		c := wc.ended
		if wc.running != nil {
			c = c.Add(wc.running.Counts())
		}
		out.Watchers[i] = c
	}
	return out
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
