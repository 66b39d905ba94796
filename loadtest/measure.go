package loadtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// target is a system under test: the resc-go replicas or the baseline.
type target struct {
	name string
	k    keys
	// alive returns nil while the system runs, else why it stopped.
	alive func() error
	// started, when not nil, is called the moment a measurement starts
	// (profiles, Redis statistics).
	started func()
}

// measured is the outcome of one measurement.
type measured struct {
	events  int
	elapsed time.Duration
	lat     *histogram // nil when latency is not measured
	lag     *histogram // rate mode: how late each event was pushed
	tally   *tally     // the tasks an observer took, for the checker
	lists   []string   // lists holding tasks besides the task queue
}

func (m *measured) perSecond() float64 {
	if m.elapsed <= 0 {
		return 0
	}
	return float64(m.events) / m.elapsed.Seconds()
}

// pushBatch is how many events one LPUSH carries when events are pushed in
// bulk (warm-up, preload, live feed).
const pushBatch = 1000

// pushBulk LPUSHes events seq from..to-1 to key (see pushEvents).
func (r *runner) pushBulk(ctx context.Context, key string, from, to int) error {
	return pushEvents(ctx, r.rdb, r.clk, key, from, to)
}

// pushEvents LPUSHes events seq from..to-1 to key, pushBatch a command, a
// pipeline of up to 50 commands at a time; each event is stamped with the
// time its pipeline is sent.
func pushEvents(ctx context.Context, rdb redis.Cmdable, clk clock, key string, from, to int) error {
	pipe := rdb.Pipeline()
	vals := make([]any, 0, pushBatch)
	for seq := from; seq < to; {
		stamp := clk.now()
		for c := 0; c < 50 && seq < to; c++ {
			vals = vals[:0]
			for ; len(vals) < pushBatch && seq < to; seq++ {
				vals = append(vals, eventText(seq, stamp))
			}
			pipe.LPush(ctx, key, vals...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("loadtest: LPUSH %s: %w", key, err)
		}
	}
	return nil
}

// waitTasks waits until n tasks are visible: in the task queue, plus those
// an observer already took (popped). It polls LLEN every millisecond (a
// negligible load), fails when the count does not move for the stall
// timeout or the target stops, and returns when the count was reached.
func (r *runner) waitTasks(ctx context.Context, t *target, n int64, popped func() int64) (time.Time, error) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	last, lastMove := int64(-1), time.Now()
	for {
		l, err := r.rdb.LLen(ctx, t.k.tasks).Result()
		if err != nil {
			return time.Time{}, fmt.Errorf("loadtest: LLEN %s: %w", t.k.tasks, err)
		}
		if popped != nil {
			l += popped()
		}
		now := time.Now()
		if l >= n {
			return now, nil
		}
		if l != last {
			last, lastMove = l, now
		} else if now.Sub(lastMove) > r.o.StallTimeout {
			return time.Time{}, fmt.Errorf("loadtest: %s: %d of %d tasks visible, no progress for %v", t.name, l, n, r.o.StallTimeout)
		}
		if err := t.alive(); err != nil {
			return time.Time{}, err
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// warmup pushes n events and waits for their tasks, then deletes the task
// queue and set: connections, code paths and Redis structures are warm
// when the measurement starts, and the measurement counts only its own.
func (r *runner) warmup(ctx context.Context, t *target, n int) error {
	if n <= 0 {
		return nil
	}
	if err := r.pushBulk(ctx, t.k.input, 0, n); err != nil {
		return err
	}
	if _, err := r.waitTasks(ctx, t, int64(n), nil); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	return r.rdb.Del(ctx, t.k.tasks, t.k.set).Err()
}

// throughput pushes n events as fast as possible and measures the time
// until all their tasks are visible.
//
// preload (default) pushes them first to a staging list, then RENAMEs it
// to the input queue: the n events appear at once, and the clock starts
// then, so the time measured is the system's alone, not the producer's.
// live pushes them while the system takes them (LPUSH of 1000 events,
// one command after the other), the clock starting at the first push.
func (r *runner) throughput(ctx context.Context, t *target, n int, feed string) (*measured, error) {
	var start time.Time
	var producer chan error
	switch feed {
	case "live":
		producer = make(chan error, 1)
		start = time.Now()
		if t.started != nil {
			t.started()
		}
		go func() { producer <- r.pushLive(ctx, t.k.input, n) }()
	default:
		if err := r.rdb.Del(ctx, t.k.staging).Err(); err != nil {
			return nil, err
		}
		if err := r.pushBulk(ctx, t.k.staging, 0, n); err != nil {
			return nil, err
		}
		if l, err := r.rdb.LLen(ctx, t.k.input).Result(); err != nil || l != 0 {
			return nil, fmt.Errorf("loadtest: input queue %s not empty before the measurement (%d, %v)", t.k.input, l, err)
		}
		if t.started != nil {
			t.started()
		}
		start = time.Now()
		// RENAME wakes a replica blocked in BLMOVE on the input queue.
		if err := r.rdb.Rename(ctx, t.k.staging, t.k.input).Err(); err != nil {
			return nil, fmt.Errorf("loadtest: RENAME %s %s: %w", t.k.staging, t.k.input, err)
		}
	}
	end, err := r.waitTasks(ctx, t, int64(n), nil)
	if producer != nil {
		err = errors.Join(err, <-producer)
	}
	if err != nil {
		return nil, err
	}
	return &measured{events: n, elapsed: end.Sub(start), tally: newTally(n)}, nil
}

func (r *runner) pushLive(ctx context.Context, key string, n int) error {
	vals := make([]any, 0, pushBatch)
	for seq := 0; seq < n; {
		stamp := r.clk.now()
		vals = vals[:0]
		for ; len(vals) < pushBatch && seq < n; seq++ {
			vals = append(vals, eventText(seq, stamp))
		}
		if err := r.rdb.LPush(ctx, key, vals...).Err(); err != nil {
			return fmt.Errorf("loadtest: LPUSH %s: %w", key, err)
		}
	}
	return nil
}

// startObserver starts the observer of the options on t's tasks. For the
// listener observer the subscription is in place when it returns.
func (r *runner) startObserver(ctx context.Context, t *target, n int) (*observer, func(), error) {
	opts := r.clientOptions()
	opts.PoolSize, opts.MinIdleConns = 1, 1
	rdb, remover := redis.NewClient(opts), redis.NewClient(opts)
	octx, cancel := context.WithCancel(ctx)
	stop := func() {
		cancel()
		_ = rdb.Close()
		_ = remover.Close()
	}
	if r.o.Observe == "listener" {
		s, err := subscribe(octx, rdb, t.k.channel)
		if err != nil {
			stop()
			return nil, nil, err
		}
		o := newObserver(r.clk, n, nil)
		go o.listen(octx, s)
		return o, stop, nil
	}
	o := newObserver(r.clk, n, newTally(n))
	set := t.k.set
	if r.o.NoSet {
		set = ""
	}
	go o.pop(octx, rdb, t.k.tasks, remover, set)
	return o, stop, nil
}

// rate pushes n events at rate events/s, each LPUSHed alone (events of
// independent producers) but those due at the same moment sent in one
// pipeline, and measures each event's latency to its task's visibility.
// An event is stamped with the time its pipeline is sent; how late that
// was against the schedule is recorded as the producer lag, so that a run
// whose producer could not hold the rate shows it.
func (r *runner) rate(ctx context.Context, t *target, n int, rate float64) (*measured, error) {
	o, stop, err := r.startObserver(ctx, t, n)
	if err != nil {
		return nil, err
	}
	defer stop()
	lag := &histogram{}
	if t.started != nil {
		t.started()
	}
	start := time.Now()
	pipe := r.rdb.Pipeline()
	for sent := 0; sent < n; {
		now := time.Since(start)
		due := min(n, int(now.Seconds()*rate)+1)
		if due > sent {
			stamp := r.clk.now()
			for seq := sent; seq < due; seq++ {
				pipe.LPush(ctx, t.k.input, eventText(seq, stamp))
				lag.record(now - time.Duration(float64(seq)/rate*float64(time.Second)))
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, fmt.Errorf("loadtest: LPUSH %s: %w", t.k.input, err)
			}
			sent = due
		}
		if err := t.alive(); err != nil {
			return nil, err
		}
		if sent < n {
			next := time.Duration(float64(sent) / rate * float64(time.Second))
			sleep(ctx, next-time.Since(start))
		}
	}
	var popped func() int64
	if o.tally != nil { // the pop observer removes the tasks it sees
		popped = o.seen.Load
	}
	end, err := r.waitTasks(ctx, t, int64(n), popped)
	if err != nil {
		return nil, err
	}
	// The last tasks may be visible and not yet received.
	if err := r.waitObserver(ctx, o, n); err != nil {
		return nil, err
	}
	return &measured{events: n, elapsed: end.Sub(start), lat: &o.hist, lag: lag, tally: o.tally}, nil
}

// waitObserver waits until the observer has seen n tasks and ended.
func (r *runner) waitObserver(ctx context.Context, o *observer, n int) error {
	timer := time.NewTimer(r.o.StallTimeout)
	defer timer.Stop()
	select {
	case <-o.done:
	case <-timer.C:
		return fmt.Errorf("loadtest: observer saw %d of %d tasks", o.seen.Load(), n)
	case <-ctx.Done():
		return ctx.Err()
	}
	return o.wait()
}

// idle pushes n events one at a time, each when the task of the previous
// one has been seen and gap has passed: the latency of a system at rest,
// blocked in its take when the event arrives.
func (r *runner) idle(ctx context.Context, t *target, n int, gap time.Duration) (*measured, error) {
	o, stop, err := r.startObserver(ctx, t, n)
	if err != nil {
		return nil, err
	}
	defer stop()
	if t.started != nil {
		t.started()
	}
	start := time.Now()
	for seq := range n {
		if err := r.rdb.LPush(ctx, t.k.input, eventText(seq, r.clk.now())).Err(); err != nil {
			return nil, fmt.Errorf("loadtest: LPUSH %s: %w", t.k.input, err)
		}
		if err := r.awaitSeq(ctx, t, o, seq); err != nil {
			return nil, err
		}
		if seq < n-1 {
			sleep(ctx, gap)
		}
	}
	elapsed := time.Since(start)
	if err := r.waitObserver(ctx, o, n); err != nil {
		return nil, err
	}
	return &measured{events: n, elapsed: elapsed, lat: &o.hist, tally: o.tally}, nil
}

// awaitSeq waits until the observer reports the task of event seq.
func (r *runner) awaitSeq(ctx context.Context, t *target, o *observer, seq int) error {
	timer := time.NewTimer(r.o.StallTimeout)
	defer timer.Stop()
	for {
		select {
		case s := <-o.notify:
			if s == seq {
				return nil
			}
		case <-o.done:
			// The observer ends as it reports its last task: both are
			// ready, and select picks either. The report was sent before
			// the end, so it is in the buffer if it was made.
			if err := o.wait(); err != nil {
				return err
			}
			for {
				select {
				case s := <-o.notify:
					if s == seq {
						return nil
					}
				default:
					return fmt.Errorf("loadtest: observer ended before the task of event %d", seq)
				}
			}
		case <-timer.C:
			if err := t.alive(); err != nil {
				return err
			}
			return fmt.Errorf("loadtest: %s: no task for event %d within %v", t.name, seq, r.o.StallTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
