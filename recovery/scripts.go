package recovery

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"sync"
	"time"

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
	var st replayStats
	for {
		b, left, err := r.replayBatch(ctx, w, list, replica, r.s.Now())
		st.replayed += b.replayed
		st.delayed += b.delayed
		st.dead += b.dead
		if err != nil {
			return st, err
		}
		r.badKeys.remove(list)
		if left == 0 || b.total() == 0 {
			return st, nil
		}
	}
}

// replayBatch runs replay.lua once (see its header).
func (r *Recoverer) replayBatch(ctx context.Context, w Watched, list, replica string, now time.Time) (replayStats, int64, error) {
	keys := []string{list, w.InputQueue, keyspace.DelaySchedule(r.s.Prefix, w.InputQueue), keyspace.DeadList(w.InputQueue)}
	reply, err := replayScript.Run(ctx, r.dialect, r.rdb, keys,
		r.s.BatchSize, now.UnixMilli(), r.s.MaxReplays,
		r.s.ReplayDelay.Milliseconds(), r.s.MaxReplayDelay.Milliseconds(),
		replica, w.InputQueue, now.UTC().Format(time.RFC3339), scriptBudget).Int64Slice()
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

// promote runs promote.lua once (see its header).
func (r *Recoverer) promote(ctx context.Context, sched, input string, nowMs int64) (int, error) {
	reply, err := promoteScript.Run(ctx, r.dialect, r.rdb, []string{sched, input}, nowMs, r.s.BatchSize, scriptBudget).Int64Slice()
	if err != nil {
		return 0, err
	}
	if len(reply) != 2 {
		return 0, fmt.Errorf("recovery: unexpected reply of promote.lua: %v", reply)
	}
	switch reply[0] {
	case 1:
		r.badKeys.remove(sched)
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
