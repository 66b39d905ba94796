// Package deadletter is the home of the dead-letter entry (Entry: its JSON
// format, written by package watcher for failed fetches and bad
// destinations and by package recovery's replay.lua for poison events),
// and the operations on the dead-letter lists "<input_queue>/dead": read
// them, put their events back into play (requeue) or remove them (drop).
// It imports no other domain package: the writers import it.
//
// Entries are JSON objects (Entry). A list may also hold what a human
// pushed by hand: such an entry is kept as it is (Record.Entry is nil) and
// requeued only when the caller asks for its text to be pushed as the
// event.
//
// Guarantees:
//   - Requeue is one atomic script per entry (requeue.lua): the entry
//     leaves the dead-letter list and its event enters the input queue in
//     the same step, or nothing is written. An entry requeued twice, or
//     requeued by one operator while another drops it, is pushed at most
//     once: the later call finds no entry (ErrGone).
//   - The event pushed is the exact bytes of the original event
//     (event_base64 when the event is not valid UTF-8).
//   - Requeue pushes the bare event, a fresh occurrence: an event
//     dead-lettered as poison gets its full allowance of replays again.
//   - The entry of an event set aside for its size (Entry.SetAside) is
//     requeued from the hash field holding its bytes, and the field is
//     deleted in the same step; dropping it deletes the field too.
//
// Non-guarantees:
//   - Identical entries (same event, reason, replica and second) are
//     interchangeable: requeuing or dropping one removes the oldest copy.
//   - Read is a snapshot; the list may change right after. Positions count
//     from the oldest entry, so new dead letters (pushed at the head) do
//     not move them; removing an entry moves every newer one down by one.
//   - Requeue pushes with LPUSH, as producers do: the event is taken after
//     the events already waiting in the input queue.
package deadletter

import (
	"context"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

var (
	//go:embed requeue.lua
	requeueSrc    string
	requeueScript = script.New(requeueSrc, script.TypeCheck)
)

// Outcomes of Requeue and Drop.
var (
	// ErrGone: the entry is no longer in the dead-letter list (requeued or
	// dropped meanwhile); nothing was written.
	ErrGone = errors.New("deadletter: the entry is no longer in the dead-letter list")

	// ErrDeadType and ErrInputType: a key has the wrong
	// Redis type; nothing was written. The error is a *script.TypeError
	// naming the key (it wraps script.ErrWrongType too).
	ErrDeadType  = errors.New("deadletter: the dead-letter list is not a list")
	ErrInputType = errors.New("deadletter: the input queue is not a list")
	ErrAsideType = errors.New("deadletter: the hash of the oversized events is not a hash")

	// ErrAsideGone: the entry is of an event set aside for its size, whose
	// bytes are no longer in their hash; nothing was written (the entry
	// can only be dropped).
	ErrAsideGone = errors.New("deadletter: the bytes of the event set aside are gone")
)

// Record is one stored entry of a dead-letter list.
type Record struct {
	// Position is the entry's place counted from the oldest, 1 (the tail
	// of the list).
	Position int64
	// Stored is the entry exactly as stored.
	Stored string
	// Entry is the parsed entry; nil when Stored is not a dead-letter
	// entry (something pushed by hand).
	Entry *Entry
}

// Event returns the exact bytes of the record's event: the decoded
// event_base64 when there is one, else the event; for a record that is
// not a dead-letter entry, its stored text.
func (r Record) Event() string {
	if r.Entry == nil {
		return r.Stored
	}
	if r.Entry.EventBase64 != "" {
		b, _ := base64.StdEncoding.DecodeString(r.Entry.EventBase64) // checked by Parse
		return string(b)
	}
	return r.Entry.Event
}

// Reader is what Read needs of a go-redis client.
type Reader interface {
	TxPipeline() redis.Pipeliner
}

// Read returns the length of the dead-letter list of inputQueue and its
// newest limit entries (every entry when limit <= 0), oldest first, read
// together in one MULTI. A missing list is empty; a key of another type is
// an error wrapping ErrDeadType.
func Read(ctx context.Context, rdb Reader, inputQueue string, limit int64) (length int64, records []Record, err error) {
	return ReadRange(ctx, rdb, inputQueue, 0, limit)
}

// ReadRange is Read of the limit entries after the skip newest ones
// (every entry after them when limit <= 0), for paging.
func ReadRange(ctx context.Context, rdb Reader, inputQueue string, skip, limit int64) (length int64, records []Record, err error) {
	key := keyspace.DeadList(inputQueue)
	skip = max(skip, 0)
	stop := int64(-1)
	if limit > 0 {
		stop = skip + limit - 1
	}
	pipe := rdb.TxPipeline()
	llen := pipe.LLen(ctx, key)
	lrange := pipe.LRange(ctx, key, skip, stop)
	if _, err := pipe.Exec(ctx); err != nil {
		if script.IsWrongTypeReply(err) {
			return 0, nil, &script.TypeError{Key: key, Err: ErrDeadType}
		}
		return 0, nil, fmt.Errorf("deadletter: reading %q: %w", key, err)
	}
	length = llen.Val()
	stored := lrange.Val() // newest first
	records = make([]Record, len(stored))
	for i, s := range stored {
		r := &records[len(stored)-1-i]
		r.Position, r.Stored = length-skip-int64(i), s
		r.Entry, _ = Parse(s)
	}
	return length, records, nil
}

// Requeue removes one copy of the entry stored (the oldest) from the
// dead-letter list of inputQueue and LPUSHes event (the exact event bytes,
// Record.Event) to inputQueue, in one atomic script; for the entry of an
// event set aside for its size, the bytes pushed are those of its hash
// field, which is deleted (ErrAsideGone when it is missing). The event goes back
// bare, as a producer pushes it: a fresh occurrence, with its full
// allowance of crash replays (the counts travel with the entries, see
// keyspace.StampReplays). It returns ErrGone when no such entry is left,
// an error wrapping ErrDeadType or ErrInputType when a key has the wrong
// type (nothing written in both cases), and the Redis error when Redis did
// not answer: the entry may then have been requeued or not (calling
// Requeue again is safe: it returns ErrGone if it was).
func Requeue(ctx context.Context, d script.Dialect, rdb redis.Scripter, inputQueue, stored, event string) error {
	keys := []string{keyspace.DeadList(inputQueue), inputQueue}
	field := ""
	if e, ok := Parse(stored); ok && e.SetAside() {
		keys, field = append(keys, e.EventKey), e.EventField
	}
	return runRequeue(ctx, d, rdb, keys, stored, event, field, "requeue")
}

// runRequeue runs requeue.lua (see its header) and maps its reply.
func runRequeue(ctx context.Context, d script.Dialect, rdb redis.Scripter, keys []string, stored, event, field, mode string) error {
	res, err := requeueScript.Run(ctx, d, rdb, keys, stored, event, field, mode).Int64Slice()
	if err != nil {
		return fmt.Errorf("deadletter: %s: %w", mode, err)
	}
	switch code := script.Code(res); {
	case code == 1:
		return nil
	case code == 0 && len(res) == 2:
		return fmt.Errorf("%w: field %q of %q", ErrAsideGone, field, keys[2])
	case code == 0:
		return ErrGone
	case code >= 2 && code <= 4:
		return &script.TypeError{Key: keys[code-2], Err: []error{ErrDeadType, ErrInputType, ErrAsideType}[code-2]}
	}
	return fmt.Errorf("deadletter: unexpected reply of requeue.lua: %v", res)
}

// Remover is what Drop needs of a go-redis client.
type Remover interface {
	redis.Scripter
	LRem(ctx context.Context, key string, count int64, value any) *redis.IntCmd
}

// Drop removes one copy of the entry stored (the oldest) from the
// dead-letter list of inputQueue, with one LREM; the entry of an event set
// aside for its size also deletes the event's field, in one atomic script.
// It returns ErrGone when no such entry is left, and an error wrapping
// ErrDeadType (or ErrAsideType) when a key has the wrong type.
func Drop(ctx context.Context, d script.Dialect, rdb Remover, inputQueue, stored string) error {
	key := keyspace.DeadList(inputQueue)
	if e, ok := Parse(stored); ok && e.SetAside() {
		return runRequeue(ctx, d, rdb, []string{key, inputQueue, e.EventKey}, stored, "", e.EventField, "drop")
	}
	n, err := rdb.LRem(ctx, key, -1, stored).Result()
	if err != nil {
		if script.IsWrongTypeReply(err) {
			return &script.TypeError{Key: key, Err: ErrDeadType}
		}
		return fmt.Errorf("deadletter: drop from %q: %w", key, err)
	}
	if n == 0 {
		return ErrGone
	}
	return nil
}
