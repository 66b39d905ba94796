package worker

// What a worker does on its own lists beside taking: replaying its own
// taken lists when a lease starts, handing back at shutdown, promoting
// its due retries. The scripts are the service's (internal/consumer).

import (
	"context"
	"strings"
	"time"

	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/consumer"
)

// replayOwn replays what the worker's taken list of q holds, exactly as
// the leader replays the list of a dead worker: counted per occurrence,
// delayed, or dead-lettered past MaxReplays.
func (w *Worker) replayOwn(ctx context.Context, q *queue) {
	rs := consumer.Replay{Prefix: w.o.Prefix, MaxReplays: w.o.replays(), ReplayDelay: consumer.DefaultReplayDelay,
		MaxReplayDelay: consumer.DefaultMaxReplayDelay, BatchSize: consumer.DefaultBatchSize}
	st, err := consumer.ReplayAll(ctx, w.rdb, w.dialect, rs, q.name, true, q.taken, w.o.ID, "", time.Now)
	if err != nil {
		w.log.Warn("replaying its own taken list", "list", q.taken, "err", err)
		return
	}
	if n := st.Total(); n > 0 {
		w.stats.replayed.Add(n)
		w.log.Warn("replayed the tasks left in its own taken list", "list", q.taken,
			"tasks", st.Replayed, "delayed", st.Delayed, "dead_lettered", st.Dead)
	}
}

// handBack gives the tasks of ts back to q's queue, oldest first.
func (w *Worker) handBack(ctx context.Context, q *queue, ts []*Task) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	entries := make([]string, len(ts))
	for i, t := range ts {
		entries[i] = t.entry
	}
	n, err := consumer.HandBack(ctx, w.rdb, w.dialect, q.taken, q.name, entries)
	w.stats.handedBack.Add(n)
	if err != nil {
		w.log.Warn("handing tasks back: they stay in the taken list, for the leader to replay", "list", q.taken, "tasks", len(ts)-int(n), "err", err)
		return
	}
	w.log.Info("handed tasks back", "queue", q.name, "tasks", n)
}

// promote moves the due retries of the worker's queues back into them,
// every RetryDelay (at most every second), until ctx is done.
func (w *Worker) promote(ctx context.Context) {
	every := min(w.o.RetryDelay, time.Second)
	for backoff.Sleep(ctx, every) {
		for _, q := range w.queues {
			if _, err := consumer.PromoteDue(ctx, w.rdb, w.dialect, w.o.Prefix, q.name, time.Now()); err != nil && ctx.Err() == nil {
				w.log.Debug("promoting due retries", "queue", q.name, "err", strings.TrimSpace(err.Error()))
			}
		}
	}
}

// replays is MaxReplays as consumer.Replay takes it, New's defaults
// applied: NoReplays (negative) is 0, no replay.
func (o *Options) replays() int { return max(o.MaxReplays, 0) }
