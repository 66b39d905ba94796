package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/membership"
	"github.com/resc-go/resc/recovery"
)

// propagator reads and writes the W3C traceparent resc-go stores.
var propagator = propagation.TraceContext{}

// Run registers the worker, then takes and handles tasks until ctx is
// done; it then stops taking, waits up to DrainTimeout for the handlers
// in flight, hands the tasks of the others back to their queues,
// deregisters and returns nil. It returns an error when it cannot start
// (no queue, bad options, Redis unreachable, the id in use by a live
// worker or replica) or when the registration cannot be renewed any more
// (the id was taken over).
//
// While the registration's lease is live the worker takes tasks; when it
// is lost (Redis unreachable for longer than the lease), the handlers'
// contexts are cancelled and nothing more is completed: the leader
// replays the worker's taken lists once it is presumed dead, and the
// worker, registered again, replays what is left in them itself.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.check(); err != nil {
		return err
	}
	d, err := script.Detect(ctx, w.rdb)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	w.dialect = d
	now := time.Now()
	lists := make([]string, len(w.queues))
	announce := make([]any, 0, 2*len(w.queues))
	for i, q := range w.queues {
		lists[i] = q.taken
		announce = append(announce, q.name, now.Unix())
	}
	// The leader learns of the queues before any task is taken.
	if err := w.rdb.HSet(ctx, keyspace.WorkerQueues(keyspace.SharedPrefix(w.rdb, w.o.Prefix)), announce...).Err(); err != nil {
		return fmt.Errorf("worker: announcing its queues: %w", err)
	}
	host, _ := os.Hostname()
	member, err := membership.Register(ctx, w.rdb, membership.Info{
		ID: w.o.ID, Host: host, PID: os.Getpid(), Version: w.o.Version, Started: now.UTC(),
		TakenLists: lists, Kind: "worker",
	}, membership.Options{Settings: w.o.Cluster, Dialect: d, Logger: w.log, WaitForExpiry: true})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	memberCtx, stopMember := context.WithCancel(context.WithoutCancel(ctx))
	memberDone := make(chan error, 1)
	go func() { memberDone <- member.Run(memberCtx) }()
	promoted := make(chan struct{})
	go func() {
		defer close(promoted)
		w.promote(ctx)
	}()

	var runErr error
	var token string
	for ctx.Err() == nil {
		lease, err := member.WaitLease(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				runErr = err
			}
			break
		}
		_, token = member.LeaseToken()
		cause := w.runSession(ctx, lease, token)
		switch {
		case ctx.Err() != nil:
		case lease.Err() != nil:
			w.log.Warn("lease lost: stopped taking; registering again", "cause", context.Cause(lease))
		default:
			w.log.Warn("fence lost: stopped taking; starting again", "cause", cause)
		}
		select {
		case err := <-memberDone:
			memberDone <- err
			if err != nil {
				runErr = fmt.Errorf("worker: %w", err)
			}
		default:
		}
		if runErr != nil {
			break
		}
	}
	<-promoted
	stopMember()
	if err := <-memberDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("worker: %w", err)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := member.Deregister(dctx); err != nil && !errors.Is(err, membership.ErrNotRegistered) {
		w.log.Warn("deregistering", "err", err)
	}
	if token != "" {
		w.releaseFences(dctx, token)
	}
	return runErr
}

// runSession takes and handles tasks while lease is live and ctx is not
// done. On ctx done it drains; on a lost lease (or fence) it gives up at
// once, and returns why.
func (w *Worker) runSession(ctx context.Context, lease context.Context, token string) (cause error) {
	// The session ends too when a fence is lost (keepFences).
	lease, loseLease := context.WithCancelCause(lease)
	defer loseLease(nil)
	defer func() { cause = context.Cause(lease) }()
	if !w.setFences(lease, token) {
		return
	}
	over := make(chan struct{})
	defer close(over)
	go w.keepFences(lease, over, token, loseLease)
	s := &session{
		w:        w,
		lease:    lease,
		token:    token,
		sem:      make(chan struct{}, w.o.Concurrency+w.o.Prefetch),
		run:      make(chan struct{}, w.o.Concurrency),
		stopping: make(chan struct{}),
		done:     map[*queue]chan *Task{},
		inflight: map[*Task]*queue{},
	}
	s.handlers, s.cancel = context.WithCancel(lease)
	defer s.cancel()
	// Whatever the own taken lists hold was taken under an earlier lease.
	for _, q := range w.queues {
		w.replayOwn(lease, q)
	}
	takeCtx, stopTaking := context.WithCancel(lease)
	defer stopTaking()
	go func() {
		select {
		case <-ctx.Done():
		case <-takeCtx.Done():
		}
		stopTaking()
	}()
	completers := make(chan struct{}, len(w.queues))
	takers := make(chan struct{}, len(w.queues))
	for _, q := range w.queues {
		ch := make(chan *Task, 2*w.o.Concurrency)
		s.done[q] = ch
		go func() {
			defer func() { completers <- struct{}{} }()
			s.complete(q, ch)
		}()
	}
	for _, q := range w.queues {
		go func() {
			defer func() { takers <- struct{}{} }()
			s.take(takeCtx, q)
		}()
	}
	for range w.queues {
		<-takers
	}
	close(s.stopping)
	// Taking has stopped. Drain: wait for the handlers, up to the timeout
	// (at once when the lease is lost: their work cannot be completed).
	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	if lease.Err() == nil {
		s.mu.Lock()
		n := len(s.inflight)
		s.mu.Unlock()
		if n > 0 {
			w.log.Info("draining", "in_flight", n, "timeout", w.o.DrainTimeout)
		}
		timer := time.NewTimer(w.o.DrainTimeout)
		select {
		case <-finished:
		case <-timer.C:
		case <-lease.Done():
		}
		timer.Stop()
	}
	s.cancel()
	// Handlers that honour their context return now; the others are
	// abandoned: their tasks are handed back and what they return ignored.
	grace := time.NewTimer(time.Second)
	select {
	case <-finished:
	case <-grace.C:
	}
	grace.Stop()
	s.mu.Lock()
	s.over = true
	left := map[*queue][]*Task{}
	for t, q := range s.inflight {
		left[q] = append(left[q], t)
	}
	s.inflight = map[*Task]*queue{}
	s.mu.Unlock()
	s.sending.Wait()
	for _, ch := range s.done {
		close(ch)
	}
	for range w.queues {
		<-completers
	}
	if lease.Err() != nil {
		return // the leader, or the next lease, replays the taken lists
	}
	for q, ts := range left {
		slices.SortFunc(ts, func(a, b *Task) int { return cmp.Compare(a.seq, b.seq) })
		w.handBack(context.WithoutCancel(ctx), q, ts)
	}
	return nil // set by the deferred call
}

// fenceTTL is the TTL of the worker's fences: the registration's, renewed
// as often.
func (w *Worker) fenceTTL() int64 {
	return w.o.Cluster.WithDefaults().DeadAfter.Milliseconds()
}

// setFences writes the worker's fence on each of its queues with token,
// before the session takes anything, retrying while Redis fails; false
// when the lease ended first.
func (w *Worker) setFences(lease context.Context, token string) bool {
	for _, q := range w.queues {
		for attempt := 1; ; attempt++ {
			code, err := fenceScript.Run(lease, w.dialect, w.rdb, []string{q.fence}, "set", token, w.fenceTTL()).Int64()
			if err == nil && code == 1 {
				break
			}
			if err == nil {
				err = fmt.Errorf("fence.lua: reply %d (2: the fence %s is not a string)", code, q.fence)
			}
			if lease.Err() != nil {
				return false
			}
			w.log.Warn("setting the fence of a queue", "queue", q.name, "err", err, "attempt", attempt)
			if !backoff.Sleep(lease, backoff.Delay(attempt)) {
				return false
			}
		}
	}
	return true
}

// keepFences renews the worker's fences every heartbeat interval until
// over is closed or the lease ends, and ends the lease (loseLease) when a
// fence is gone: the leader replayed that taken list, or it expired while
// Redis failed. Run then starts a new session, which writes them again.
func (w *Worker) keepFences(lease context.Context, over <-chan struct{}, token string, loseLease context.CancelCauseFunc) {
	t := time.NewTicker(w.o.Cluster.WithDefaults().HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-over:
			return
		case <-lease.Done():
			return
		case <-t.C:
		}
		for _, q := range w.queues {
			code, err := fenceScript.Run(lease, w.dialect, w.rdb, []string{q.fence}, "refresh", token, w.fenceTTL()).Int64()
			switch {
			case err != nil:
				if lease.Err() == nil {
					w.log.Warn("renewing the fence of a queue", "queue", q.name, "err", err)
				}
			case code != 1:
				loseLease(fmt.Errorf("%w: the fence on queue %q is gone (the leader replayed the taken list, or it expired)", errFenced, q.name))
				return
			}
		}
	}
}

// releaseFences deletes the worker's fences still holding token, once it
// has stopped.
func (w *Worker) releaseFences(ctx context.Context, token string) {
	for _, q := range w.queues {
		if err := fenceScript.Run(ctx, w.dialect, w.rdb, []string{q.fence}, "release", token).Err(); err != nil {
			w.log.Warn("deleting the fence of a queue: it expires by itself", "queue", q.name, "err", err)
		}
	}
}

// replayOwn replays what the worker's taken list of q holds.
func (w *Worker) replayOwn(ctx context.Context, q *queue) {
	rs := recovery.Settings{Prefix: w.o.Prefix, MaxReplays: w.o.MaxReplays}
	replayed, delayed, dead, err := recovery.ReplayOwn(ctx, w.rdb, w.dialect, rs,
		recovery.Watched{InputQueue: q.name, TakenQueue: keyspace.WorkerTakenQueue(q.name), Tasks: true}, q.taken, w.o.ID)
	if err != nil {
		w.log.Warn("replaying its own taken list", "list", q.taken, "err", err)
		return
	}
	if n := replayed + delayed + dead; n > 0 {
		w.stats.Replayed.Add(n)
		w.log.Warn("replayed the tasks left in its own taken list", "list", q.taken,
			"tasks", replayed, "delayed", delayed, "dead_lettered", dead)
	}
}

// take takes the tasks of q while ctx is live, and starts their handlers.
func (s *session) take(ctx context.Context, q *queue) {
	w := s.w
	outage := backoff.NewOutage(w.log, "redis")
	attempt := 0
	for ctx.Err() == nil {
		// At least one free slot, then as many more as are free.
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		slots := 1
		for slots < w.o.Batch {
			select {
			case s.sem <- struct{}{}:
				slots++
				continue
			default:
			}
			break
		}
		tasks, err := s.takeBatch(ctx, q, slots)
		if err == nil && len(tasks) == 0 {
			var entries []string
			if entries, err = s.wait(ctx, q); err == nil && len(entries) > 0 {
				tasks = s.read(ctx, q, entries)
			}
		}
		if err != nil {
			s.release(slots)
			if ctx.Err() != nil || errors.Is(err, errFenced) {
				return
			}
			outage.Fail(err)
			attempt++
			if !backoff.Sleep(ctx, backoff.Delay(attempt)) {
				return
			}
			continue
		}
		outage.OK()
		attempt = 0
		s.release(slots - len(tasks))
		if len(tasks) == 0 {
			continue
		}
		w.stats.Taken.Add(int64(len(tasks)))
		s.mu.Lock()
		for _, t := range tasks {
			s.taken++
			t.seq = s.taken
			s.inflight[t] = q
		}
		s.mu.Unlock()
		for _, t := range tasks {
			s.wg.Add(1)
			go s.handle(q, t)
		}
	}
}

// takeBatch runs take.lua for up to n tasks.
func (s *session) takeBatch(ctx context.Context, q *queue, n int) ([]*Task, error) {
	p := s.w.o.Prefix
	keys := []string{q.name, q.taken, q.fence, keyspace.TaskFailures(p, q.name)}
	if q.set != "" {
		keys = append(keys, q.set)
	}
	reply, err := takeScript.Run(ctx, s.w.dialect, s.w.rdb, keys, s.token, n, scriptBudget, keyspace.TraceContext(p, q.name, "")).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("taking from %q: %w", q.name, err)
	}
	switch {
	case len(reply) == 0:
	case reply[0] == "1" && len(reply)%3 == 1:
		tasks := make([]*Task, 0, len(reply)/3)
		for i := 1; i < len(reply); i += 3 {
			t := newTask(q, reply[i])
			t.traceparent = reply[i+1]
			_, _ = fmt.Sscan(reply[i+2], &t.Failures)
			tasks = append(tasks, t)
		}
		return tasks, nil
	case reply[0] == "0":
		return nil, errFenced
	case reply[0] == "2":
		return nil, &script.TypeError{Key: q.name, Err: script.ErrWrongType}
	case reply[0] == "3":
		return nil, &script.TypeError{Key: q.taken, Err: script.ErrWrongType}
	case reply[0] == "4":
		return nil, &script.TypeError{Key: q.set, Err: script.ErrWrongType}
	case reply[0] == "6":
		return nil, &script.TypeError{Key: keys[3], Err: script.ErrWrongType}
	}
	return nil, fmt.Errorf("worker: take.lua: unexpected reply %q", reply)
}

// wait blocks up to Block for a task of the empty queue q (BLMOVE, which
// cannot check the registration: the lease is checked just before, and a
// task moved after it was lost stays in the taken list, replayed later).
func (s *session) wait(ctx context.Context, q *queue) ([]string, error) {
	if ctx.Err() != nil {
		return nil, nil
	}
	entry, err := s.w.rdb.BLMove(ctx, q.name, q.taken, "RIGHT", "LEFT", s.w.o.Block).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, fmt.Errorf("waiting on %q: %w", q.name, err)
	}
	if q.set != "" {
		task, _ := keyspace.Unstamp(entry)
		if err := s.w.rdb.ZRem(ctx, q.set, task).Err(); err != nil {
			s.w.log.Warn("removing a task from its dedup set", "set", q.set, "err", err)
		}
	}
	return []string{entry}, nil
}

// newTask is the task of an entry of q's taken list.
func newTask(q *queue, entry string) *Task {
	body, replays := keyspace.Unstamp(entry)
	return &Task{Queue: q.name, Body: body, Replays: replays, entry: entry, sha: sha1Hex(body)}
}

// read makes the tasks of entries taken by BLMOVE, with their stored trace
// contexts and failure counts, as take.lua returns them with its tasks
// (one round trip; a failure to read them only loses them).
func (s *session) read(ctx context.Context, q *queue, entries []string) []*Task {
	p := s.w.o.Prefix
	tasks := make([]*Task, len(entries))
	traceKeys := make([]string, len(entries))
	fields := make([]string, len(entries))
	for i, e := range entries {
		tasks[i] = newTask(q, e)
		body := tasks[i].Body
		traceKeys[i] = keyspace.TraceContext(p, q.name, body)
		fields[i] = tasks[i].sha
	}
	var traces *redis.SliceCmd
	var failures *redis.SliceCmd
	_, err := s.w.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		traces = pipe.MGet(ctx, traceKeys...)
		failures = pipe.HMGet(ctx, keyspace.TaskFailures(p, q.name), fields...)
		return nil
	})
	if err != nil {
		s.w.log.Debug("reading trace contexts and failure counts", "err", err)
	}
	if traces != nil && traces.Err() == nil {
		for i, v := range traces.Val() {
			if tp, ok := v.(string); ok {
				tasks[i].traceparent = tp
			}
		}
	}
	if failures != nil && failures.Err() == nil {
		for i, v := range failures.Val() {
			if c, ok := v.(string); ok {
				_, _ = fmt.Sscan(c, &tasks[i].Failures)
			}
		}
	}
	return tasks
}

// handle runs q's handler on t under a span continuing the task's trace,
// then completes it or records the failure.
func (s *session) handle(q *queue, t *Task) {
	w := s.w
	defer s.wg.Done()
	defer func() { <-s.sem }()
	select {
	case <-s.stopping:
		return // held, not started: handed back, or replayed
	default:
	}
	select {
	case s.run <- struct{}{}:
		defer func() { <-s.run }()
	case <-s.stopping:
		return
	}
	ctx := s.handlers
	var start []trace.SpanStartOption
	if t.traceparent != "" {
		parent := propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": t.traceparent})
		if sc := trace.SpanContextFromContext(parent); sc.IsValid() {
			if w.o.TraceLink {
				start = append(start, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: sc}))
			} else {
				ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
			}
		}
	}
	ctx, span := w.tracer.Start(ctx, "process "+q.name, append(start, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "redis"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", q.name),
			attribute.String("resc.task", t.Body),
			attribute.String("resc.worker", w.o.ID),
			attribute.Int("resc.replays", t.Replays),
			attribute.Int("resc.failures", t.Failures),
		))...)
	err := s.call(ctx, q, t)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
	if s.handlers.Err() != nil && err != nil {
		return // stopped by the worker: handed back or replayed, not a failure
	}
	if err == nil {
		c := propagation.MapCarrier{}
		propagator.Inject(ctx, c)
		t.traceparent = c["traceparent"]
		if s.forget(t, true) {
			s.done[q] <- t // the completer reads on until every send is over
			s.sending.Done()
		}
		return
	}
	if s.forget(t, false) {
		s.fail(q, t, err, trace.SpanContextFromContext(ctx).TraceID())
	}
}

// call runs the handler, a panic turned into an error.
func (s *session) call(ctx context.Context, q *queue, t *Task) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.w.stats.Panics.Add(1)
			s.w.log.Error("handler panicked", "queue", q.name, "task", t.Body, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return q.handler(ctx, *t)
}

// complete completes the tasks sent on ch, batching what is ready, until
// ch is closed.
func (s *session) complete(q *queue, ch chan *Task) {
	batch := make([]*Task, 0, maxCompleteBatch)
	for t := range ch {
		batch = append(batch[:0], t)
	more:
		for len(batch) < maxCompleteBatch {
			select {
			case t, ok := <-ch:
				if !ok {
					break more
				}
				batch = append(batch, t)
			default:
				break more
			}
		}
		s.completeBatch(q, batch)
	}
}

// completeBatch runs complete.lua on batch, retrying while Redis fails and
// the lease is live.
func (s *session) completeBatch(q *queue, batch []*Task) {
	w := s.w
	p := w.o.Prefix
	push := q.done != ""
	keys := make([]string, 0, 4+2*len(batch))
	done := q.done
	if !push {
		done = q.taken // any key of the slot; not written
	}
	keys = append(keys, q.taken, q.fence, keyspace.TaskFailures(p, q.name), done)
	args := make([]any, 0, 3+4*len(batch))
	args = append(args, s.token, w.o.TraceTTL.Milliseconds(), map[bool]string{true: "1", false: "0"}[push])
	for _, t := range batch {
		event := t.Body
		if q.doneEvent != nil {
			event = q.doneEvent(*t)
		}
		doneTrace := keyspace.TraceContext(p, q.done, event)
		keys = append(keys, keyspace.TraceContext(p, q.name, t.Body), doneTrace)
		args = append(args, t.entry, t.sha, event, t.traceparent)
	}
	ctx := context.WithoutCancel(s.lease)
	for attempt := 1; ; attempt++ {
		if s.lease.Err() != nil {
			w.log.Warn("lease lost before tasks could be completed: they will be replayed", "queue", q.name, "tasks", len(batch))
			return
		}
		reply, err := completeScript.Run(ctx, w.dialect, w.rdb, keys, args...).Int64Slice()
		if err == nil && len(reply) == 1+len(batch) && reply[0] == 1 {
			for _, ok := range reply[1:] {
				if ok == 1 {
					w.stats.Completed.Add(1)
				} else {
					w.stats.Fenced.Add(1)
				}
			}
			return
		}
		if err == nil {
			switch {
			case len(reply) == 1 && reply[0] == 0:
				w.stats.Fenced.Add(int64(len(batch)))
				w.log.Warn("completion refused: the registration is lost; the tasks will be replayed", "queue", q.name, "tasks", len(batch))
				return
			case len(reply) == 1 && reply[0] == 2:
				err = fmt.Errorf("a key has the wrong type (taken list %q, failure counts, done queue %q)", q.taken, q.done)
			default:
				err = fmt.Errorf("complete.lua: unexpected reply %v", reply)
			}
		}
		w.log.Warn("completing tasks", "queue", q.name, "tasks", len(batch), "err", err, "attempt", attempt)
		select {
		case <-time.After(backoff.Delay(attempt)):
		case <-s.lease.Done():
		}
	}
}

// fail records a failed attempt of t: a retry in the delay schedule, or
// the dead-letter list after MaxAttempts attempts or a permanent error.
func (s *session) fail(q *queue, t *Task, cause error, traceID trace.TraceID) {
	w := s.w
	p := w.o.Prefix
	now := time.Now()
	n := t.Failures + 1
	mode, reason := "retry", ""
	switch {
	case errors.Is(cause, ErrPermanent):
		mode, reason = "dead", "permanent failure: "+cause.Error()
	case n >= w.o.MaxAttempts:
		mode, reason = "dead", fmt.Sprintf("failed %d times, last: %v", n, cause)
	}
	e := deadletter.NewEntry(t.Body, q.name, reason, w.o.ID, now, n)
	if traceID.IsValid() {
		e.TraceID = traceID.String()
	}
	keys := []string{q.taken, q.fence, keyspace.TaskFailures(p, q.name),
		keyspace.DelaySchedule(p, q.name), keyspace.DeadList(q.name), keyspace.TraceContext(p, q.name, t.Body)}
	args := []any{s.token, t.entry, t.sha, mode, n, now.Add(w.retryDelay(n)).UnixMilli(), w.newTag(now), e.JSON()}
	ctx := context.WithoutCancel(s.lease)
	for attempt := 1; s.lease.Err() == nil; attempt++ {
		code, err := failScript.Run(ctx, w.dialect, w.rdb, keys, args...).Int64()
		if err == nil {
			switch code {
			case 1:
				if mode == "dead" {
					w.stats.DeadLettered.Add(1)
					w.log.Warn("task dead-lettered", "queue", q.name, "task", t.Body, "reason", reason)
				} else {
					w.stats.Retried.Add(1)
					w.log.Info("task failed: retried later", "queue", q.name, "task", t.Body, "failures", n, "in", w.retryDelay(n), "err", cause)
				}
				return
			case 0:
				w.stats.Fenced.Add(1)
				return
			case 2:
				err = fmt.Errorf("a key has the wrong type (taken list %q, failure counts, delay schedule, dead list %q)", q.taken, keyspace.DeadList(q.name))
			default:
				err = fmt.Errorf("fail.lua: unexpected reply %d", code)
			}
		}
		w.log.Warn("recording a failed task", "queue", q.name, "err", err, "attempt", attempt)
		select {
		case <-time.After(backoff.Delay(attempt)):
		case <-s.lease.Done():
		}
	}
}

// handBack gives the tasks of ts back to q's queue, oldest first.
func (w *Worker) handBack(ctx context.Context, q *queue, ts []*Task) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	entries := make([]any, len(ts))
	for i, t := range ts {
		entries[i] = t.entry
	}
	reply, err := handbackScript.Run(ctx, w.dialect, w.rdb, []string{q.taken, q.name}, entries...).Int64Slice()
	if err != nil || len(reply) != 2 || reply[0] != 1 {
		w.log.Warn("handing tasks back: they stay in the taken list, for the leader to replay", "list", q.taken, "tasks", len(ts), "err", err, "reply", reply)
		return
	}
	w.stats.HandedBack.Add(reply[1])
	w.log.Info("handed tasks back", "queue", q.name, "tasks", reply[1])
}

// promote moves the due retries of the worker's queues back into them,
// every RetryDelay (at most every second), until ctx is done.
func (w *Worker) promote(ctx context.Context) {
	every := min(w.o.RetryDelay, time.Second)
	for backoff.Sleep(ctx, every) {
		for _, q := range w.queues {
			if _, err := recovery.PromoteDue(ctx, w.rdb, w.dialect, w.o.Prefix, q.name, time.Now()); err != nil && ctx.Err() == nil {
				w.log.Debug("promoting due retries", "queue", q.name, "err", strings.TrimSpace(err.Error()))
			}
		}
	}
}
