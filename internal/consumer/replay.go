package consumer

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

var (
	//go:embed replay.lua
	replaySrc string
	// ReplayScript is replay.lua (see its header).
	ReplayScript = script.New(replaySrc, script.TypeCheck, script.ReplayStamp, script.Delay)

	//go:embed promote.lua
	promoteSrc string
	// PromoteScript is promote.lua (see its header).
	PromoteScript = script.New(promoteSrc, script.TypeCheck)
)

// Errors of replay.lua and promote.lua, each wrapped in a
// *script.TypeError naming the key.
var (
	ErrTakenType    = errors.New("recovery: the taken list is not a list")
	ErrInputType    = errors.New("recovery: the input queue is not a list")
	ErrScheduleType = errors.New("recovery: the delay schedule is not a sorted set")
	ErrDeadType     = errors.New("recovery: the dead-letter list is not a list")
	// ErrBadArgument is a script refusing its arguments: a bug of the
	// caller.
	ErrBadArgument = errors.New("recovery: script refused its arguments")
)

// DefaultBatchSize is the most entries one replay or promotion call moves
// when the caller gives no other.
const DefaultBatchSize = 1000

// Replay are the settings of a replay: the same for the leader replaying
// a dead replica's or worker's taken list and for a worker replaying its
// own. Every field is used as it is (no defaults here).
type Replay struct {
	Prefix string // of the delay schedule
	// MaxReplays: an entry replayed more often goes to the dead-letter
	// list; 0 dead-letters every entry.
	MaxReplays int
	// ReplayDelay is the delay of the 2nd replay (the 1st is immediate),
	// doubling up to MaxReplayDelay.
	ReplayDelay, MaxReplayDelay time.Duration
	BatchSize                   int // the most entries one call moves
}

// ReplayCounts count what a replay did with the entries it moved.
type ReplayCounts struct {
	Replayed, Delayed, Dead int64
}

// Total is every entry moved.
func (c ReplayCounts) Total() int64 { return c.Replayed + c.Delayed + c.Dead }

// ReplayAll runs replay.lua on list, the taken list of owner on queue,
// until it is empty, deleting the key fence (a dead worker's fence on the
// queue) unless it is "". tasks marks a task queue of the worker SDK (the
// dead-letter reason names workers).
func ReplayAll(ctx context.Context, rdb redis.Scripter, d script.Dialect, s Replay, queue string, tasks bool, list, owner, fence string, now func() time.Time) (ReplayCounts, error) {
	var st ReplayCounts
	for {
		b, left, err := ReplayBatch(ctx, rdb, d, s, queue, tasks, list, owner, fence, now())
		st.Replayed += b.Replayed
		st.Delayed += b.Delayed
		st.Dead += b.Dead
		if err != nil {
			return st, err
		}
		if left == 0 || b.Total() == 0 {
			return st, nil
		}
	}
}

// ReplayBatch runs replay.lua once (see its header) and returns what it
// moved and how many entries are left in list.
func ReplayBatch(ctx context.Context, rdb redis.Scripter, d script.Dialect, s Replay, queue string, tasks bool, list, owner, fence string, now time.Time) (ReplayCounts, int64, error) {
	keys := []string{list, queue, keyspace.DelaySchedule(s.Prefix, queue), keyspace.DeadList(queue)}
	if fence != "" {
		keys = append(keys, fence)
	}
	victims := "replicas (poison event)"
	if tasks {
		victims = "workers (poison task)"
	}
	reply, err := ReplayScript.Run(ctx, d, rdb, keys,
		s.BatchSize, now.UnixMilli(), s.MaxReplays,
		s.ReplayDelay.Milliseconds(), s.MaxReplayDelay.Milliseconds(),
		owner, queue, now.UTC().Format(time.RFC3339), ScriptBudget, victims).Int64Slice()
	if err != nil {
		return ReplayCounts{}, 0, err
	}
	if len(reply) != 5 {
		return ReplayCounts{}, 0, fmt.Errorf("recovery: unexpected reply of replay.lua: %v", reply)
	}
	var bad error
	switch reply[0] {
	case 1:
		return ReplayCounts{reply[1], reply[2], reply[3]}, reply[4], nil
	case 2:
		bad = &script.TypeError{Key: keys[0], Err: ErrTakenType}
	case 3:
		bad = &script.TypeError{Key: keys[1], Err: ErrInputType}
	case 4:
		bad = &script.TypeError{Key: keys[2], Err: ErrScheduleType}
	case 5:
		bad = &script.TypeError{Key: keys[3], Err: ErrDeadType}
	case 6:
		bad = ErrBadArgument
	default:
		bad = fmt.Errorf("recovery: unexpected reply of replay.lua: %v", reply)
	}
	return ReplayCounts{}, 0, bad
}

// PromoteDue moves the delayed entries of queue's delay schedule that are
// due at now to the consuming end of queue, in due order, as the leader
// does, and returns how many it moved. Any process may call it: each entry
// moves once. A worker promotes the retries of its own queues with it.
func PromoteDue(ctx context.Context, rdb redis.Scripter, d script.Dialect, prefix, queue string, now time.Time) (int, error) {
	total := 0
	for {
		n, err := PromoteOnce(ctx, rdb, d, keyspace.DelaySchedule(prefix, queue), queue, now.UnixMilli(), DefaultBatchSize)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// PromoteOnce runs promote.lua once (see its header).
func PromoteOnce(ctx context.Context, rdb redis.Scripter, d script.Dialect, sched, input string, nowMs int64, batch int) (int, error) {
	reply, err := PromoteScript.Run(ctx, d, rdb, []string{sched, input}, nowMs, batch, ScriptBudget).Int64Slice()
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
		return 0, &script.TypeError{Key: sched, Err: ErrScheduleType}
	case 3:
		return 0, &script.TypeError{Key: input, Err: ErrInputType}
	case 4:
		return 0, ErrBadArgument
	}
	return 0, fmt.Errorf("recovery: unexpected reply of promote.lua: %v", reply)
}

// Defaults of the replay delays: the 2nd replay of an entry waits
// DefaultReplayDelay, doubling up to DefaultMaxReplayDelay (package
// recovery's defaults; config's replay_delay_ms is the same).
const (
	DefaultReplayDelay    = time.Second
	DefaultMaxReplayDelay = 30 * time.Second
)
