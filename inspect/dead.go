package inspect

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

// ErrNoWatcher: no watcher of the configuration has the input queue given.
var ErrNoWatcher = errors.New("inspect: no watcher has this input queue")

// Watcher returns the watcher of the configuration whose input queue is
// queue, or an error wrapping ErrNoWatcher.
func (in *Inspector) Watcher(queue string) (config.Watcher, error) {
	for _, w := range in.cfg.Watchers {
		if w.InputQueue == queue {
			return w, nil
		}
	}
	return config.Watcher{}, fmt.Errorf("%w: %q", ErrNoWatcher, queue)
}

// DeadQueue reports whether queue has a dead-letter list that `resc dead`
// and the console work on: the input queue of a watcher, or a task queue
// that workers of the Go SDK announced (keyspace.WorkerQueues), whose
// dead-letter list "<queue>/dead" holds the tasks they gave up on.
// Otherwise it returns an error wrapping ErrNoWatcher.
func (in *Inspector) DeadQueue(ctx context.Context, queue string) error {
	if _, err := in.Watcher(queue); err == nil {
		return nil
	}
	ok, err := in.rdb.HExists(ctx, keyspace.WorkerQueues(keyspace.SharedPrefix(in.rdb, in.cfg.KeyPrefix)), queue).Result()
	if err != nil && !script.IsWrongTypeReply(err) {
		return err // a failed read (CLUSTERDOWN...) is no answer
	}
	if !ok {
		return fmt.Errorf("%w (nor any worker of the Go SDK announced it): %q", ErrNoWatcher, queue)
	}
	return nil
}

// DeadLetters are entries of the dead-letter list of a watcher.
type DeadLetters struct {
	// Queue is the watcher's input queue, DeadList its dead-letter list.
	Queue, DeadList string
	// Length is the length of the list when it was read.
	Length int64
	// Records are the entries read, oldest first; Position 1 is the oldest
	// entry of the list.
	Records []deadletter.Record
}

// DeadLetters reads the dead-letter list of the watcher of queue: its
// length and its newest limit entries (every entry when limit <= 0),
// oldest first, in one MULTI. A key of another type is an error wrapping
// deadletter.ErrDeadType.
func (in *Inspector) DeadLetters(ctx context.Context, queue string, limit int64) (*DeadLetters, error) {
	if err := in.DeadQueue(ctx, queue); err != nil {
		return nil, err
	}
	length, recs, err := deadletter.Read(ctx, in.rdb, queue, limit)
	if err != nil {
		return nil, err
	}
	return &DeadLetters{Queue: queue, DeadList: keyspace.DeadList(queue), Length: length, Records: recs}, nil
}

// Selection chooses entries of a dead-letter list: by their positions (as
// DeadLetters numbers them), all of them, those whose event matches a
// regular expression, or those Where accepts (called oldest first, once
// per entry). Exactly one must be given.
type Selection struct {
	Positions []int64
	All       bool
	Match     *regexp.Regexp
	Where     func(deadletter.Record) bool
}

// NoEntryError is a Selection's position beyond the end of the list.
type NoEntryError struct {
	DeadList         string
	Position, Length int64
}

func (e *NoEntryError) Error() string {
	return fmt.Sprintf("%s has no entry #%d (it has %d)", e.DeadList, e.Position, e.Length)
}

// Select reads the whole dead-letter list of queue and returns the
// entries sel chooses, oldest first, each once. A position beyond the end
// is a *NoEntryError: nothing is chosen.
func (in *Inspector) Select(ctx context.Context, queue string, sel Selection) ([]deadletter.Record, error) {
	given := 0
	for _, g := range []bool{len(sel.Positions) > 0, sel.All, sel.Match != nil, sel.Where != nil} {
		if g {
			given++
		}
	}
	if given != 1 {
		return nil, errors.New("inspect: a Selection gives exactly one of Positions, All, Match and Where")
	}
	dl, err := in.DeadLetters(ctx, queue, 0)
	if err != nil {
		return nil, err
	}
	var chosen []deadletter.Record
	switch {
	case len(sel.Positions) > 0:
		ps := slices.Compact(slices.Sorted(slices.Values(sel.Positions)))
		for _, n := range ps {
			if n < 1 || n > dl.Length {
				return nil, &NoEntryError{DeadList: dl.DeadList, Position: n, Length: dl.Length}
			}
			chosen = append(chosen, dl.Records[n-1]) // Records[i] is #i+1
		}
	case sel.All:
		chosen = dl.Records
	case sel.Where != nil:
		for _, r := range dl.Records {
			if sel.Where(r) {
				chosen = append(chosen, r)
			}
		}
	default:
		for _, r := range dl.Records {
			if sel.Match.MatchString(r.Event()) {
				chosen = append(chosen, r)
			}
		}
	}
	return chosen, nil
}

// Action is what Apply does to dead-letter entries.
type Action int

const (
	// Requeue pushes the entry's event back to the consuming end of its
	// input queue and removes the entry, atomically, with a fresh crash
	// replay budget (deadletter.Requeue).
	Requeue Action = iota
	// Drop removes the entry (deadletter.Drop).
	Drop
)

func (a Action) String() string {
	if a == Drop {
		return "drop"
	}
	return "requeue"
}

// Result is what Apply did with one entry.
type Result int

const (
	// Done: requeued or dropped.
	Done Result = iota
	// WouldDo: a dry run's entry that would be requeued or dropped.
	WouldDo
	// SkippedNotEntry: not a dead-letter entry (pushed by hand), not
	// requeued without ApplyOptions.Raw.
	SkippedNotEntry
	// SkippedGone: no longer in the list (requeued or dropped meanwhile).
	SkippedGone
	// SkippedAsideGone: the entry of an event set aside for its size
	// whose bytes are no longer in their hash: not requeued (drop it).
	SkippedAsideGone
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Raw requeues entries that are no dead-letter entries too, pushing
	// their stored text as the event.
	Raw bool
	// DryRun writes nothing: each entry that would be acted on is WouldDo.
	DryRun bool
}

// Counts are the results of an Apply: Done (or WouldDo in a dry run) and
// skipped.
type Counts struct {
	Done, Skipped int
}

// Apply does a to recs (from Select, oldest first, so that requeued events
// reach the input queue in their order), one atomic step per entry,
// calling each with every entry's result as it goes. It stops at the first
// error other than an entry gone, returning the counts so far: the entries
// before it are done, the others untouched.
func (in *Inspector) Apply(ctx context.Context, a Action, queue string, recs []deadletter.Record, o ApplyOptions, each func(deadletter.Record, Result)) (Counts, error) {
	var c Counts
	if err := in.DeadQueue(ctx, queue); err != nil {
		return c, err
	}
	for _, r := range recs {
		res, err := in.apply(ctx, a, queue, r, o)
		if err != nil {
			return c, err
		}
		if res == Done || res == WouldDo {
			c.Done++
		} else {
			c.Skipped++
		}
		if each != nil {
			each(r, res)
		}
	}
	return c, nil
}

func (in *Inspector) apply(ctx context.Context, a Action, queue string, r deadletter.Record, o ApplyOptions) (Result, error) {
	if a == Requeue && r.Entry == nil && !o.Raw {
		return SkippedNotEntry, nil
	}
	if o.DryRun {
		return WouldDo, nil
	}
	d, err := in.scriptDialect(ctx)
	if err != nil {
		return 0, err
	}
	if a == Requeue {
		err = deadletter.Requeue(ctx, d, in.rdb, queue, r.Stored, r.Event())
	} else {
		err = deadletter.Drop(ctx, d, in.rdb, queue, r.Stored)
	}
	switch {
	case err == nil:
		return Done, nil
	case errors.Is(err, deadletter.ErrGone):
		return SkippedGone, nil
	case errors.Is(err, deadletter.ErrAsideGone):
		return SkippedAsideGone, nil
	}
	return 0, err
}

// scriptDialect is the script dialect of the server, detected at the
// first call that succeeds.
func (in *Inspector) scriptDialect(ctx context.Context) (script.Dialect, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.detected {
		d, err := script.Detect(ctx, in.rdb)
		if err != nil {
			return d, err
		}
		in.dialect, in.detected = d, true
	}
	return in.dialect, nil
}
