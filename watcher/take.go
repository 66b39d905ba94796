package watcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/consumer"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/rules"
)

// takeLoop takes events while ctx is not done and dispatches them.
func (w *Watcher) takeLoop(ctx, work context.Context, slots chan struct{}, ready chan<- []*item, fetches *sync.WaitGroup) (leftover []*item) {
	fetchSlots := newHostSlots(w.cfg.FetchConcurrency, w.cfg.Concurrency, hostWait)
	// A BLMOVE under way when ctx ends may still take one event, up to the
	// block timeout later; it is handled like any other.
	defer w.log.Info("stopped taking")
	attempt := 0
	// stranded is set by a failed take: the server may have moved events
	// into the taken list and lost the reply.
	stranded := false
	for ctx.Err() == nil {
		if stranded {
			if err := w.replayStranded(ctx, slots); err != nil {
				return
			}
			stranded = false
		}
		// Hold at least one slot, and as many more as are free, up to a batch.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < w.cfg.BatchSize {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		events, idle, err := w.take(ctx, n)
		for range n - len(events) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.outage.Fail(err)
			stranded = true
			attempt++
			if !backoff.Sleep(ctx, backoff.Delay(attempt)) {
				return
			}
			continue
		}
		attempt = 0
		w.outage.OK()
		leftover = append(leftover, w.dispatchTaken(ctx, work, events, idle, slots, ready, fetchSlots, fetches)...)
	}
	return leftover
}

// dispatchTaken starts the work of the entries of one take: their traces,
// the fetches, and the commit of those needing none, inline when the
// replica is idle (commitInline; it returns what that commit could not
// commit) or by the committer.
func (w *Watcher) dispatchTaken(ctx, work context.Context, entries []string, idle bool, slots chan struct{}, ready chan<- []*item, fetchSlots *hostSlots, fetches *sync.WaitGroup) (leftover []*item) {
	events, replays := unstamped(entries)
	var infos []traceInfo
	if w.tracer != nil {
		infos = w.readTraceInfo(ctx, events, replays)
	}
	var traces []*eventTrace
	if infos != nil {
		traces = w.startTraces(ctx, work, events, infos)
	}
	// The events needing no fetch go to the committer together: one
	// hand-off, and a commit of them all rather than of the first few.
	// Their items and tasks are allocated for the whole take.
	b := &takeBatch{
		items: make([]item, len(events)),
		now:   make([]*item, 0, len(events)),
		tasks: make([]rules.Task, 0, len(events)),
	}
	for i, ev := range events {
		var t *eventTrace
		if traces != nil {
			t = traces[i]
		}
		w.dispatch(work, takenEvent{b, i, entries[i], ev, t}, fetchRun{ready, fetchSlots, fetches})
	}
	if len(b.now) == 0 {
		return nil
	}
	if idle {
		if left, ok := w.commitInline(work, b.now, slots); ok {
			return left
		}
	}
	w.queued.Add(int64(len(b.now)))
	ready <- b.now
	return nil
}

// commitInline commits items at once, from the taking goroutine, when the
// committer has nothing queued nor under way; it reports whether it did,
// and returns what it could not commit. It serves an idle replica: the event
// a BLMOVE waited for (idleAfter or more) is committed without waking the
// committing goroutine (on a machine with idle CPUs, waking a thread is most
// of an idle event's latency) and before the next take is sent. Under load
// takes do not wait, and the committer commits while the next events are
// taken.
func (w *Watcher) commitInline(work context.Context, items []*item, slots chan struct{}) (left []*item, ok bool) {
	if w.queued.Load() != 0 || !w.commitMu.TryLock() {
		return nil, false
	}
	defer w.commitMu.Unlock()
	// Under the lock, no commit is under way; nothing queued means no event
	// taken earlier waits to be committed, so the order of commits is kept.
	if w.queued.Load() != 0 {
		return nil, false
	}
	left = w.commitBatch(work, items)
	for range items {
		<-slots
	}
	w.inlineCommits.Add(1)
	return left, true
}

// replayStranded moves back to the input queue the events a failed take may
// have left in the taken list without this replica knowing them. It first
// holds every slot, so that nothing is in flight: whatever the taken list
// holds then is stranded.
func (w *Watcher) replayStranded(ctx context.Context, slots chan struct{}) error {
	held := 0
	defer func() {
		for range held {
			<-slots
		}
	}()
	for held < cap(slots) {
		select {
		case slots <- struct{}{}:
			held++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return w.replayTaken(ctx)
}

// idleAfter is how long a take must have waited for its event for the
// replica to count as idle (see commitInline): at more than about a
// thousand events a second, events keep going to the committer.
const idleAfter = time.Millisecond

// takeBudget is the most bytes one take.lua call moves, beyond its first
// event: it bounds the script's time and what one take holds in memory.
const takeBudget = consumer.ScriptBudget

// take takes up to n events: without blocking when the queue has some, else
// blocking with BLMOVE for one, up to the block timeout. idle is true when
// it waited idleAfter or more for that one. An event longer than
// max_event_bytes comes back as its set-aside entry (take.lua).
func (w *Watcher) take(ctx context.Context, n int) (events []string, idle bool, err error) {
	events, err = w.takeNow(ctx, "take", n, takeBudget, w.opts.MaxEventBytes)
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, err
	}
	if len(events) > 0 {
		return events, false, nil
	}
	start := time.Now()
	ev, err := w.rdb.BLMove(ctx, w.cfg.InputQueue, w.taken, "RIGHT", "LEFT", w.opts.BlockTimeout).Result()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	idle = time.Since(start) >= w.idleAfter
	if int64(len(ev)) > w.opts.MaxEventBytes {
		// The blocking take could not look before it took: the event is
		// at the head of the taken list, set it aside there.
		events, err = w.takeNow(ctx, "aside", len(ev))
		return events, idle, err
	}
	return []string{ev}, idle, nil
}

// ErrTakenType and ErrOversizedType say which key of take.lua (wrapped in
// a script.TypeError) has the wrong type; nothing was taken.
var (
	ErrTakenType     = errors.New("watcher: the taken list is not a list")
	ErrOversizedType = errors.New("watcher: the oversized events hash is not a hash")
)

// takeNow runs take.lua in mode with args (see its header), and a field
// for an event it may set aside, the one way scripts run (script.Do), its
// command laid out by Args so that the reply is read straight into
// strings. It returns the entries of a done reply; none when fenced.
func (w *Watcher) takeNow(ctx context.Context, mode string, args ...any) ([]string, error) {
	field := w.runTag + "-" + strconv.FormatUint(w.asides.Add(1), 36)
	argv := append(append(append(make([]any, 0, 2+len(args)), mode), args...), field)
	keys := []any{&w.cfg.InputQueue, &w.taken, &w.oversized}
	cmdArgs := takeScript.Args(nil, w.opts.Dialect, keys, argv...)
	reply, err := script.Do(ctx, takeScript, w.opts.Dialect, w.rdb, func() *redis.StringSliceCmd {
		cmd := redis.NewStringSliceCmd(ctx, cmdArgs...)
		_ = w.rdb.Process(ctx, cmd)
		return cmd
	}).Result()
	if err != nil {
		return nil, err
	}
	return takeReply(reply, w.taken, w.oversized)
}

// takeReply maps take.lua's reply (see its header) to the entries taken or
// an error.
func takeReply(reply []string, taken, oversized string) ([]string, error) {
	code := ""
	if len(reply) > 0 {
		code = reply[0]
	}
	switch {
	case code == "1":
		return reply[1:], nil
	case code == "0":
		return nil, nil
	case code == "2":
		return nil, &script.TypeError{Key: taken, Err: ErrTakenType}
	case code == "3":
		return nil, &script.TypeError{Key: oversized, Err: ErrOversizedType}
	case code == "4" && len(reply) == 2:
		return nil, fmt.Errorf("watcher: take.lua refused its arguments: %s", reply[1])
	}
	return nil, fmt.Errorf("watcher: take.lua: unexpected reply %q", reply)
}

// takeBatch holds what the events of one take share.
type takeBatch struct {
	items   []item        // one per event taken
	now     []*item       // those ready to commit at once (no fetch)
	tasks   []rules.Task  // their tasks, each item's a part
	matches []rules.Match // scratch: the rules matching the current event
}

// unstamped returns the events of the taken entries and their crash replay
// counts (keyspace.Unstamp). With no stamped entry, the common case, it
// returns entries itself and nil counts, allocating nothing.
func unstamped(entries []string) (events []string, replays []int) {
	for i, e := range entries {
		if len(e) == 0 || e[0] != 0 {
			continue
		}
		if events == nil {
			events, replays = slices.Clone(entries), make([]int, len(entries))
		}
		events[i], replays[i] = keyspace.Unstamp(e)
	}
	if events == nil {
		return entries, nil
	}
	return events, replays
}
