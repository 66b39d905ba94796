package recovery

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

var (
	//go:embed replay.lua
	replaySrc    string
	replayScript = script.New(replaySrc, script.TypeCheck, script.ReplayStamp)

	//go:embed promote.lua
	promoteSrc    string
	promoteScript = script.New(promoteSrc, script.TypeCheck)
)

// Errors of the scripts, each wrapped in a *TypeError naming the key.
var (
	ErrTakenType    = errors.New("recovery: the taken list is not a list")
	ErrInputType    = errors.New("recovery: the input queue is not a list")
	ErrScheduleType = errors.New("recovery: the delay schedule is not a sorted set")
	ErrDeadType     = errors.New("recovery: the dead-letter list is not a list")
	// ErrWorkerQueuesType is the worker queues' key not being a hash.
	ErrWorkerQueuesType = errors.New("recovery: the worker queues key is not a hash")
)

// scriptBudget is the most bytes one replay.lua or promote.lua call moves,
// beyond its first entry: a list of big events moves in several calls,
// each short, so that no call holds Redis past a bound (nor anyone's lease
// renewal behind it).
const scriptBudget = 4 << 20

// errBadArgument is a script refusing its arguments: a bug of this package.
var errBadArgument = errors.New("recovery: script refused its arguments")

// TypeError is a key of the wrong type: the script wrote nothing. Its Err
// is one of the Err*Type sentinels; it wraps script.ErrWrongType too.
type TypeError = script.TypeError

// replayStats counts what a replay did with the entries it moved.
type replayStats struct {
	replayed, delayed, dead int64
}

func (s replayStats) total() int64 { return s.replayed + s.delayed + s.dead }

// replayList moves every entry of the orphan taken list, one script call
// per batch, until the list is empty.
func (r *Recoverer) replayList(ctx context.Context, w Watched, list, replica string) (replayStats, error) {
	fence := ""
	if w.Tasks {
		fence = keyspace.WorkerFence(r.s.Prefix, w.InputQueue, replica)
	}
	st, err := replayAll(ctx, r.rdb, r.dialect, r.s, w, list, replica, fence)
	if err == nil {
		r.badKeys.remove(list)
	}
	return st, err
}

// ReplayOwn moves every entry of list, the taken list of owner, back into
// w's queue exactly as the leader replays the list of a dead replica:
// counted per occurrence, delayed, or dead-lettered past MaxReplays. A
// worker (package worker) calls it on its own taken list when it starts a
// lease, since whatever is left there was taken under an earlier one.
// s's zero fields mean what Settings says (a zero MaxReplays: no replay).
func ReplayOwn(ctx context.Context, rdb redis.Scripter, d script.Dialect, s Settings, w Watched, list, owner string) (replayed, delayed, dead int64, err error) {
	s = s.WithDefaults()
	if w.TakenQueue == "" {
		w.TakenQueue = w.InputQueue + "/taken"
	}
	st, err := replayAll(ctx, rdb, d, s, w, list, owner, "")
	return st.replayed, st.delayed, st.dead, err
}

// replayAll runs replay.lua on list until it is empty, deleting the key
// fence (a dead worker's fence on the queue) unless it is "".
func replayAll(ctx context.Context, rdb redis.Scripter, d script.Dialect, s Settings, w Watched, list, replica, fence string) (replayStats, error) {
	var st replayStats
	for {
		b, left, err := replayBatch(ctx, rdb, d, s, w, list, replica, fence, s.Now())
		st.replayed += b.replayed
		st.delayed += b.delayed
		st.dead += b.dead
		if err != nil {
			return st, err
		}
		if left == 0 || b.total() == 0 {
			return st, nil
		}
	}
}

// replayBatch runs replay.lua once with r's client and settings.
func (r *Recoverer) replayBatch(ctx context.Context, w Watched, list, replica string, now time.Time) (replayStats, int64, error) {
	return replayBatch(ctx, r.rdb, r.dialect, r.s, w, list, replica, "", now)
}

// replayBatch runs replay.lua once (see its header).
func replayBatch(ctx context.Context, rdb redis.Scripter, d script.Dialect, s Settings, w Watched, list, replica, fence string, now time.Time) (replayStats, int64, error) {
	keys := []string{list, w.InputQueue, keyspace.DelaySchedule(s.Prefix, w.InputQueue), keyspace.DeadList(w.InputQueue)}
	if fence != "" {
		keys = append(keys, fence)
	}
	victims := "replicas (poison event)"
	if w.Tasks {
		victims = "workers (poison task)"
	}
	reply, err := replayScript.Run(ctx, d, rdb, keys,
		s.BatchSize, now.UnixMilli(), s.MaxReplays,
		s.ReplayDelay.Milliseconds(), s.MaxReplayDelay.Milliseconds(),
		replica, w.InputQueue, now.UTC().Format(time.RFC3339), scriptBudget, victims).Int64Slice()
	if err != nil {
		return replayStats{}, 0, err
	}
	if len(reply) != 5 {
		return replayStats{}, 0, fmt.Errorf("recovery: unexpected reply of replay.lua: %v", reply)
	}
	var bad error
	switch reply[0] {
	case 1:
		return replayStats{reply[1], reply[2], reply[3]}, reply[4], nil
	case 2:
		bad = &TypeError{Key: keys[0], Err: ErrTakenType}
	case 3:
		bad = &TypeError{Key: keys[1], Err: ErrInputType}
	case 4:
		bad = &TypeError{Key: keys[2], Err: ErrScheduleType}
	case 5:
		bad = &TypeError{Key: keys[3], Err: ErrDeadType}
	case 7:
		bad = errBadArgument
	default:
		bad = fmt.Errorf("recovery: unexpected reply of replay.lua: %v", reply)
	}
	return replayStats{}, 0, bad
}

// PromoteDue moves the delayed entries of queue's delay schedule that are
// due at now to the consuming end of queue, in due order, as the leader
// does, and returns how many it moved. Any process may call it: each entry
// moves once. A worker (package worker) promotes the retries of its own
// queues with it.
func PromoteDue(ctx context.Context, rdb redis.Scripter, d script.Dialect, prefix, queue string, now time.Time) (int, error) {
	total := 0
	for {
		n, err := promoteOnce(ctx, rdb, d, keyspace.DelaySchedule(prefix, queue), queue, now.UnixMilli(), DefaultBatchSize)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// promote runs promote.lua once (see its header).
func (r *Recoverer) promote(ctx context.Context, sched, input string, nowMs int64) (int, error) {
	n, err := promoteOnce(ctx, r.rdb, r.dialect, sched, input, nowMs, r.s.BatchSize)
	if err == nil {
		r.badKeys.remove(sched)
	}
	return n, err
}

// promoteOnce runs promote.lua once.
func promoteOnce(ctx context.Context, rdb redis.Scripter, d script.Dialect, sched, input string, nowMs int64, batch int) (int, error) {
	reply, err := promoteScript.Run(ctx, d, rdb, []string{sched, input}, nowMs, batch, scriptBudget).Int64Slice()
	if err != nil {
		return 0, err
	}
	if len(reply) != 2 {
		return 0, fmt.Errorf("recovery: unexpected reply of promote.lua: %v", reply)
	}
	switch reply[0] {
	case 1:
		return int(reply[1]), nil
	case 2:
		return 0, &TypeError{Key: sched, Err: ErrScheduleType}
	case 3:
		return 0, &TypeError{Key: input, Err: ErrInputType}
	case 4:
		return 0, errBadArgument
	}
	return 0, fmt.Errorf("recovery: unexpected reply of promote.lua: %v", reply)
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
