package recovery

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/resc-go/resc/internal/consumer"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

// The scripts replay.lua and promote.lua live in internal/consumer: a
// worker of the SDK replays its own taken lists and promotes its retries
// with them too.

// Errors of the scripts, each wrapped in a *TypeError naming the key.
var (
	ErrTakenType    = consumer.ErrTakenType
	ErrInputType    = consumer.ErrInputType
	ErrScheduleType = consumer.ErrScheduleType
	ErrDeadType     = consumer.ErrDeadType
	// ErrWorkerQueuesType is the worker queues' key not being a hash.
	ErrWorkerQueuesType = errors.New("recovery: the worker queues key is not a hash")
)

// TypeError is a key of the wrong type: the script wrote nothing. Its Err
// is one of the Err*Type sentinels; it wraps script.ErrWrongType too.
type TypeError = script.TypeError

// replayStats counts what a replay did with the entries it moved.
type replayStats = consumer.ReplayCounts

// replay is the part of s the replay script takes.
func (s Settings) replay() consumer.Replay {
	return consumer.Replay{Prefix: s.Prefix, MaxReplays: s.MaxReplays, ReplayDelay: s.ReplayDelay,
		MaxReplayDelay: s.MaxReplayDelay, BatchSize: s.BatchSize}
}

// replayList moves every entry of the orphan taken list, one script call
// per batch, until the list is empty.
func (r *Recoverer) replayList(ctx context.Context, w Watched, list, replica string) (replayStats, error) {
	fence := ""
	if w.Tasks {
		fence = keyspace.WorkerFence(r.s.Prefix, w.InputQueue, replica)
	}
	st, err := consumer.ReplayAll(ctx, r.rdb, r.dialect, r.s.replay(), w.InputQueue, w.Tasks, list, replica, fence, r.s.Now)
	if err == nil {
		r.badKeys.remove(list)
	}
	return st, err
}

// replayBatch runs replay.lua once with r's client and settings.
func (r *Recoverer) replayBatch(ctx context.Context, w Watched, list, replica string, now time.Time) (replayStats, int64, error) {
	return consumer.ReplayBatch(ctx, r.rdb, r.dialect, r.s.replay(), w.InputQueue, w.Tasks, list, replica, "", now)
}

// promote runs promote.lua once (see its header).
func (r *Recoverer) promote(ctx context.Context, sched, input string, nowMs int64) (int, error) {
	n, err := consumer.PromoteOnce(ctx, r.rdb, r.dialect, sched, input, nowMs, r.s.BatchSize)
	if err == nil {
		r.badKeys.remove(sched)
	}
	return n, err
}

// badKeys remembers the keys already logged as having the wrong type, so
// that each is logged once until it works again.
type badKeys struct {
	mu sync.Mutex
	m  map[string]bool
}

// add reports whether key was not known yet.
func (b *badKeys) add(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m[key] {
		return false
	}
	b.m[key] = true
	return true
}

func (b *badKeys) remove(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, key)
}
