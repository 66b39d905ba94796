package loadtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// An observer sees tasks become visible and records, for each, the time
// from its event's push (the stamp in its text) to that moment.
//
// Two ways to see a task, both on a dedicated connection of their own:
//
//   - pop (default): a worker's BLMPOP on the task queue, taking up to 1000
//     tasks a call. While the observer keeps up, it is blocked in BLMPOP
//     when a commit pushes a task, and Redis answers it in the same event
//     loop turn as the commit: the reply is the moment the task became
//     visible, plus one loopback transfer. It removes the tasks, and their
//     members of the dedup set (ZREM, on a second connection so that the
//     next BLMPOP is not delayed), as workers do, so that the queue and the
//     set stay small as in production; it does not change resc-go's
//     configuration. The tasks it takes are counted for the checker.
//   - listener: SUBSCRIBE to the listener channel, whose TRIGGER message
//     the commit script publishes in the same atomic step as the LPUSH.
//     It needs listener_channel on, which is work of its own for resc-go
//     and Redis: use it to measure that configuration, not the default.
//
// Keyspace notifications would not do: they name the queue, not the task.
type observer struct {
	clk    clock
	since  int64 // when it started: tasks of events pushed before are not its
	hist   histogram
	seen   atomic.Int64
	want   int64
	tally  *tally // tasks taken by a pop observer; nil for listener
	notify chan int
	done   chan struct{}
	err    error
}

func newObserver(clk clock, want int, t *tally) *observer {
	return &observer{clk: clk, since: clk.now(), want: int64(want), tally: t, notify: make(chan int, 1024), done: make(chan struct{})}
}

// record counts one task seen at now: in the tally, and, when it names an
// event, in the latencies.
func (o *observer) record(task string, now int64) {
	seq, stamp, ok := parseTask(task)
	if o.tally != nil {
		o.tally.add(task)
	}
	if !ok {
		return
	}
	o.hist.record(time.Duration(now - stamp))
	o.seen.Add(1)
	select {
	case o.notify <- seq:
	default: // nobody waits for single tasks (rate mode)
	}
}

// pop runs a pop observer on queue until it has seen want tasks or ctx is
// done. rdb must be a client of its own (one connection). When set is not
// empty, the tasks taken are removed from it through remover, a client of
// its own too.
func (o *observer) pop(ctx context.Context, rdb *redis.Client, queue string, remover *redis.Client, set string) {
	defer close(o.done)
	var removals chan []string
	if set != "" {
		removals = make(chan []string, 64)
		removed := make(chan error, 1)
		go func() { removed <- zremAll(ctx, remover, set, removals) }()
		defer func() {
			close(removals)
			if err := <-removed; err != nil && o.err == nil {
				o.err = err
			}
		}()
	}
	for o.seen.Load() < o.want && ctx.Err() == nil {
		_, vals, err := rdb.BLMPop(ctx, time.Second, "RIGHT", 1000, queue).Result()
		now := o.clk.now()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				o.err = fmt.Errorf("loadtest: observer: BLMPOP %s: %w", queue, err)
			}
			return
		}
		for _, v := range vals {
			o.record(v, now)
		}
		if removals != nil {
			removals <- vals
		}
	}
}

// zremAll removes each batch of tasks received from set, as a worker that
// took them would.
func zremAll(ctx context.Context, rdb *redis.Client, set string, batches <-chan []string) error {
	var err error
	for vals := range batches {
		if err != nil {
			continue // drain
		}
		members := make([]any, len(vals))
		for i, v := range vals {
			members[i] = v
		}
		if err = rdb.ZRem(ctx, set, members...).Err(); err != nil && ctx.Err() != nil {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("loadtest: observer: ZREM %s: %w", set, err)
	}
	return nil
}

// subscribed is a listener observer that has its subscription.
type subscribed struct {
	ps *redis.PubSub
}

// subscribe subscribes to channel; the subscription is in place when it
// returns, so that no message published afterwards is missed.
func subscribe(ctx context.Context, rdb *redis.Client, channel string) (*subscribed, error) {
	ps := rdb.Subscribe(ctx, channel)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("loadtest: observer: SUBSCRIBE %s: %w", channel, err)
	}
	return &subscribed{ps: ps}, nil
}

// listen runs a listener observer until it has seen want TRIGGER messages
// or ctx is done; it closes the subscription.
func (o *observer) listen(ctx context.Context, s *subscribed) {
	defer close(o.done)
	defer s.ps.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.ps.Close() })
	defer stop()
	for o.seen.Load() < o.want {
		msg, err := s.ps.ReceiveMessage(ctx)
		now := o.clk.now()
		if err != nil {
			if ctx.Err() == nil {
				o.err = fmt.Errorf("loadtest: observer: listener channel: %w", err)
			}
			return
		}
		// "<taken_queue> TRIGGER <event> -> <task>"
		_, rest, ok := strings.Cut(msg.Payload, " TRIGGER ")
		if !ok {
			continue
		}
		_, task, ok := strings.Cut(rest, " -> ")
		if !ok {
			continue
		}
		// A warm-up event's message may come after the subscription: resc's
		// algorithm (the baseline) publishes after the LPUSH the warm-up
		// waited for. Its stamp predates this observer.
		if _, stamp, ok := parseTask(task); ok && stamp < o.since {
			continue
		}
		o.record(task, now)
	}
}

// wait waits for the observer to end and returns its error.
func (o *observer) wait() error {
	<-o.done
	return o.err
}
