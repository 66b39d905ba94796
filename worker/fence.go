package worker

// The worker's fence on each queue it handles: a key in the queue's slot
// holding the registration's token, which take.lua, complete.lua and
// fail.lua check (docs/workers.md, "Fence").

import (
	"context"
	"fmt"
	"time"

	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/script"
)

// fenceTTL is the TTL of the worker's fences: the registration's, renewed
// as often.
func (w *Worker) fenceTTL() int64 {
	return w.reg.DeadAfter.Milliseconds()
}

// setFences writes the worker's fence on each of its queues with token,
// before the session takes anything, retrying while Redis fails; false
// when the lease ended first.
func (w *Worker) setFences(lease context.Context, token string) bool {
	for _, q := range w.queues {
		for attempt := 1; ; attempt++ {
			code, err := w.fence(lease, q, "set", token)
			if err == nil && code == 1 {
				break
			}
			if err == nil {
				err = fmt.Errorf("worker: fence.lua: the fence %s is held by another token", q.fence)
			}
			if lease.Err() != nil {
				return false
			}
			w.log.Warn("setting the fence of a queue", "queue", q.name, "err", err, "attempt", attempt)
			if !backoff.Sleep(lease, backoff.Delay(attempt)) {
				return false
			}
		}
	}
	return true
}

// keepFences renews the worker's fences every heartbeat interval until
// over is closed or the lease ends, and ends the lease (loseLease) when a
// fence is gone: the leader replayed that taken list, or it expired while
// Redis failed. Run then starts a new session, which writes them again.
func (w *Worker) keepFences(lease context.Context, over <-chan struct{}, token string, loseLease context.CancelCauseFunc) {
	t := time.NewTicker(w.reg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-over:
			return
		case <-lease.Done():
			return
		case <-t.C:
		}
		for _, q := range w.queues {
			code, err := w.fence(lease, q, "refresh", token)
			switch {
			case err != nil:
				if lease.Err() == nil {
					w.log.Warn("renewing the fence of a queue", "queue", q.name, "err", err)
				}
			case code != 1:
				loseLease(fmt.Errorf("%w: the fence on queue %q is gone (the leader replayed the taken list, or it expired)", errFenced, q.name))
				return
			}
		}
	}
}

// releaseFences deletes the worker's fences still holding token, once it
// has stopped.
func (w *Worker) releaseFences(ctx context.Context, token string) {
	for _, q := range w.queues {
		if _, err := w.fence(ctx, q, "release", token); err != nil {
			w.log.Warn("deleting the fence of a queue: it expires by itself", "queue", q.name, "err", err)
		}
	}
}

// fence runs fence.lua's op on q's fence and returns its code (see its
// header).
func (w *Worker) fence(ctx context.Context, q *queue, op, token string) (int64, error) {
	r, err := fenceScript.Run(ctx, w.dialect, w.rdb, []string{q.fence}, op, token, w.fenceTTL()).Int64Slice()
	switch {
	case err != nil:
		return 0, err
	case len(r) == 1 && r[0] == 2:
		return 0, &script.TypeError{Key: q.fence, Err: script.ErrWrongType}
	case len(r) == 1 && (r[0] == 0 || r[0] == 1):
		return r[0], nil
	}
	return 0, fmt.Errorf("worker: fence.lua: unexpected reply %v", r)
}
