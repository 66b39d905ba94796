package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/consumer"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

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

// completeArgs are the KEYS and ARGV of complete.lua for batch.
func (s *session) completeArgs(q *queue, batch []*Task) (keys []string, args []any) {
	p := s.w.o.Prefix
	push := q.done != ""
	done := q.done
	if !push {
		done = q.taken // complete.lua does not write it
	}
	keys = make([]string, 0, 4+2*len(batch))
	keys = append(keys, q.taken, q.fence, keyspace.TaskFailures(p, q.name), done)
	flag := "0"
	if push {
		flag = "1"
	}
	args = make([]any, 0, 3+4*len(batch))
	args = append(args, s.token, s.w.o.TraceTTL.Milliseconds(), flag)
	for _, t := range batch {
		event := t.Body
		if q.doneEvent != nil {
			event = q.doneEvent(*t)
		}
		keys = append(keys, keyspace.TraceContext(p, q.name, t.Body), keyspace.TraceContext(p, q.done, event))
		args = append(args, t.entry, t.sha, event, t.traceparent)
	}
	return keys, args
}

// completeBatch runs complete.lua on batch, retrying while Redis fails and
// the lease is live.
func (s *session) completeBatch(q *queue, batch []*Task) {
	w := s.w
	keys, args := s.completeArgs(q, batch)
	typed := []string{keys[0], keys[2], keys[3]} // complete.lua's wrong-type codes 2 to 4
	ctx := context.WithoutCancel(s.lease)
	for attempt := 1; ; attempt++ {
		if s.lease.Err() != nil {
			w.log.Warn("lease lost before tasks could be completed: they will be replayed", "queue", q.name, "tasks", len(batch))
			return
		}
		reply, err := completeScript.Run(ctx, w.dialect, w.rdb, keys, args...).Int64Slice()
		if err == nil {
			err = scriptError("complete.lua", reply, typed, 5)
		}
		switch {
		case err == nil && len(reply) == 1+len(batch):
			for _, ok := range reply[1:] {
				if ok == 1 {
					w.stats.completed.Add(1)
				} else {
					w.stats.fenced.Add(1)
				}
			}
			return
		case err == nil:
			err = fmt.Errorf("worker: complete.lua: unexpected reply %v", reply)
		case errors.Is(err, errFenced):
			w.stats.fenced.Add(int64(len(batch)))
			w.log.Warn("completion refused: the registration is lost; the tasks will be replayed", "queue", q.name, "tasks", len(batch))
			return
		}
		w.log.Warn("completing tasks", "queue", q.name, "tasks", len(batch), "err", err, "attempt", attempt)
		select {
		case <-time.After(backoff.Delay(attempt)):
		case <-s.lease.Done():
		}
	}
}

// scriptError is the error of a reply {code, ...} of a worker script (the
// convention of docs/workers.md): nil for 1, errFenced for 0, a
// *script.TypeError naming typed[code-2] for the wrong-type codes below
// badArg (typed: the keys whose type the script checks, in its order), an internal error for badArg and anything else.
func scriptError(name string, reply []int64, typed []string, badArg int64) error {
	switch {
	case len(reply) == 0:
	case reply[0] == 1:
		return nil
	case reply[0] == 0 && len(reply) == 1:
		return errFenced
	case reply[0] >= 2 && reply[0] < badArg && int(reply[0]-2) < len(typed) && len(reply) == 1:
		return &script.TypeError{Key: typed[reply[0]-2], Err: script.ErrWrongType}
	case reply[0] == badArg:
		return fmt.Errorf("worker: %s refused its arguments", name)
	}
	return fmt.Errorf("worker: %s: unexpected reply %v", name, reply)
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
	e := consumer.NewEntry(t.Body, q.name, reason, w.o.ID, now, n)
	if !traceID.IsValid() && mode == "dead" {
		traceID = s.storedTraceID(q, t)
	}
	if traceID.IsValid() {
		e.TraceID = traceID.String()
	}
	// fail.lua's wrong-type codes 2 to 5 name the taken list, the failure
	// counts, the delay schedule and the dead list.
	keys := []string{q.taken, q.fence, keyspace.TaskFailures(p, q.name), keyspace.DelaySchedule(p, q.name),
		keyspace.DeadList(q.name), keyspace.TraceContext(p, q.name, t.Body)}
	typed := []string{keys[0], keys[2], keys[3], keys[4]}
	args := []any{s.token, t.entry, t.sha, mode, n, w.o.RetryDelay.Milliseconds(), w.o.MaxRetryDelay.Milliseconds(),
		w.newTag(now), now.UnixMilli(), e.JSON()}
	ctx := context.WithoutCancel(s.lease)
	for attempt := 1; s.lease.Err() == nil; attempt++ {
		reply, err := failScript.Run(ctx, w.dialect, w.rdb, keys, args...).Int64Slice()
		if err == nil {
			err = scriptError("fail.lua", reply, typed, 6)
		}
		switch {
		case err == nil && mode == "dead":
			w.stats.deadLettered.Add(1)
			w.log.Warn("task dead-lettered", "queue", q.name, "task", t.Body, "reason", reason)
			return
		case err == nil && len(reply) == 2:
			w.stats.retried.Add(1)
			w.log.Info("task failed: retried later", "queue", q.name, "task", t.Body, "failures", n,
				"in", time.Duration(reply[1])*time.Millisecond, "err", cause)
			return
		case errors.Is(err, errFenced):
			w.stats.fenced.Add(1)
			return
		case err == nil:
			err = fmt.Errorf("worker: fail.lua: unexpected reply %v", reply)
		}
		w.log.Warn("recording a failed task", "queue", q.name, "err", err, "attempt", attempt)
		select {
		case <-time.After(backoff.Delay(attempt)):
		case <-s.lease.Done():
		}
	}
}

// storedTraceID is the trace of t's stored trace context (not read at the
// take without a tracer), for its dead-letter entry; invalid when none.
func (s *session) storedTraceID(q *queue, t *Task) trace.TraceID {
	tp := t.traceparent
	if tp == "" {
		tp, _ = s.w.rdb.Get(s.lease, keyspace.TraceContext(s.w.o.Prefix, q.name, t.Body)).Result()
	}
	ctx := propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx).TraceID()
}
