package consumer

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/script"
)

var (
	//go:embed handback.lua
	handbackSrc string
	// HandbackScript is handback.lua (see its header).
	HandbackScript = script.New(handbackSrc, script.TypeCheck)
)

// ErrQueueType is the queue of a hand-back not being a list.
var ErrQueueType = errors.New("consumer: the queue is not a list")

// handbackChunk is the most entries one handback.lua call moves.
const handbackChunk = 1000

// HandBackAll runs handback.lua once in mode 'all': up to 1000 entries of
// taken, newest first, and no more than about ScriptBudget bytes, move to
// the consuming end of queue. It returns how many moved and how many are
// left: call it again while both are above zero.
func HandBackAll(ctx context.Context, rdb redis.Scripter, d script.Dialect, taken, queue string) (moved, left int64, err error) {
	return handback(ctx, rdb, d, taken, queue, "all", handbackChunk, ScriptBudget)
}

// HandBack moves the entries, oldest first, that are still in taken back
// to the consuming end of queue, the oldest rightmost (taken next), in
// calls of at most 1000 entries and about ScriptBudget bytes. An entry no
// longer in taken (replayed by the leader) is not moved. It returns how
// many moved, and stops at the first error.
func HandBack(ctx context.Context, rdb redis.Scripter, d script.Dialect, taken, queue string, entries []string) (int64, error) {
	// Parts sent newest part first: each call RPUSHes its entries newest
	// first, so the oldest of all ends rightmost.
	var parts [][]string
	for start := 0; start < len(entries); {
		end, bytes := start, 0
		for end < len(entries) && end-start < handbackChunk && (end == start || bytes < ScriptBudget) {
			bytes += len(entries[end])
			end++
		}
		parts = append(parts, entries[start:end])
		start = end
	}
	total := int64(0)
	for i := len(parts) - 1; i >= 0; i-- {
		args := make([]any, 0, len(parts[i])+1)
		args = append(args, "these")
		for _, e := range parts[i] {
			args = append(args, e)
		}
		n, _, err := handback(ctx, rdb, d, taken, queue, args...)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// handback runs handback.lua once and reads its reply.
func handback(ctx context.Context, rdb redis.Scripter, d script.Dialect, taken, queue string, args ...any) (moved, left int64, err error) {
	r, err := HandbackScript.Run(ctx, d, rdb, []string{taken, queue}, args...).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(r) == 3 {
		switch r[0] {
		case 1:
			return r[1], r[2], nil
		case 2:
			return 0, 0, &script.TypeError{Key: taken, Err: ErrTakenType}
		case 3:
			return 0, 0, &script.TypeError{Key: queue, Err: ErrQueueType}
		case 4:
			return 0, 0, ErrBadArgument
		}
	}
	return 0, 0, fmt.Errorf("consumer: unexpected reply of handback.lua: %v", r)
}
