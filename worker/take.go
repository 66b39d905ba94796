package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/consumer"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

// take takes the tasks of q while ctx is live, and starts their handlers.
func (s *session) take(ctx context.Context, q *queue) {
	w := s.w
	outage := backoff.NewOutage(w.log, "redis")
	attempt := 0
	for ctx.Err() == nil {
		slots, ok := s.hold(ctx)
		if !ok {
			return
		}
		tasks, err := s.takeBatch(ctx, q, slots)
		if err == nil && len(tasks) == 0 {
			tasks, err = s.wait(ctx, q)
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
		s.start(q, tasks)
	}
}

// hold holds at least one free slot, then as many more as are free, up to
// a batch; false when ctx ended first.
func (s *session) hold(ctx context.Context) (int, bool) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, false
	}
	slots := 1
	for slots < s.w.o.Batch {
		select {
		case s.sem <- struct{}{}:
			slots++
			continue
		default:
		}
		break
	}
	return slots, true
}

// start counts the tasks taken and starts their handlers.
func (s *session) start(q *queue, tasks []*Task) {
	if len(tasks) == 0 {
		return
	}
	s.w.stats.taken.Add(int64(len(tasks)))
	s.mu.Lock()
	for _, t := range tasks {
		s.taken++
		t.seq = s.taken
		s.inflight[t] = q
	}
	s.mu.Unlock()
	for _, t := range tasks {
		s.wg.Go(func() { s.handle(q, t) })
	}
}

// takeKeys are the KEYS of take.lua for q.
func (s *session) takeKeys(q *queue, more ...string) []string {
	p := s.w.o.Prefix
	set := q.set
	if set == "" {
		set = q.name // none: take.lua does not write it
	}
	return append([]string{q.name, q.taken, q.fence, keyspace.TaskFailures(p, q.name), set}, more...)
}

// takeBatch runs take.lua for up to n tasks, then reads their trace
// contexts.
func (s *session) takeBatch(ctx context.Context, q *queue, n int) ([]*Task, error) {
	keys := s.takeKeys(q)
	reply, err := takeScript.Run(ctx, s.w.dialect, s.w.rdb, keys, s.token, "take", n, consumer.ScriptBudget).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("taking from %q: %w", q.name, err)
	}
	if err := takeError(reply, keys, 2); err != nil {
		return nil, err
	}
	tasks := make([]*Task, 0, len(reply)/2)
	for i := 1; i+1 < len(reply); i += 2 {
		t := newTask(q, reply[i])
		t.Failures, _ = strconv.Atoi(reply[i+1])
		tasks = append(tasks, t)
	}
	if s.w.tracer != nil {
		s.readTraces(ctx, q, tasks)
	}
	return tasks, nil
}

// takeError is the error of a reply of take.lua that is not code 1 with
// per strings per task (see its header).
func takeError(reply []string, keys []string, per int) error {
	if len(reply) > 0 && reply[0] == "1" && len(reply)%per == 1 {
		return nil
	}
	if len(reply) == 1 {
		switch reply[0] {
		case "0":
			return errFenced
		case "2", "3", "4", "5":
			// The queue, taken list, failure counts and dedup set.
			k, _ := strconv.Atoi(reply[0])
			typed := []string{keys[0], keys[1], keys[3], keys[4]}
			return &script.TypeError{Key: typed[k-2], Err: script.ErrWrongType}
		}
	}
	return fmt.Errorf("worker: take.lua: unexpected reply %q", reply)
}

// wait blocks up to Block for a task of the empty queue q (BLMOVE, which
// cannot check the fence: the fence was checked by the take just before),
// then finishes its take with take.lua (mode 'moved': the dedup set, the
// failure count and the trace context, fenced).
func (s *session) wait(ctx context.Context, q *queue) ([]*Task, error) {
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
	t := newTask(q, entry)
	keys := s.takeKeys(q, keyspace.TraceContext(s.w.o.Prefix, q.name, t.Body))
	// A fresh context: the entry is in the taken list now, its take is
	// finished even if ctx ended meanwhile (the handler then sees a
	// stopping session and the task is handed back).
	reply, err := takeScript.Run(context.WithoutCancel(ctx), s.w.dialect, s.w.rdb, keys, s.token, "moved", entry).StringSlice()
	if err == nil {
		err = takeError(reply, keys, 3)
	}
	switch {
	case errors.Is(err, errFenced):
		// Nothing written: the entry stays in the taken list, replayed by
		// the next lease or the leader.
		return nil, err
	case err != nil:
		// The task is this worker's all the same: it is handled, without
		// its failure count and trace context (and its dedup set member
		// may stay, as if it were pushed again).
		s.w.log.Warn("finishing a blocking take", "queue", q.name, "err", err)
	case len(reply) == 4:
		t.Failures, _ = strconv.Atoi(reply[2])
		t.traceparent = reply[3]
	}
	return []*Task{t}, nil
}

// newTask is the task of an entry of q's taken list.
func newTask(q *queue, entry string) *Task {
	body, replays := keyspace.Unstamp(entry)
	return &Task{Queue: q.name, Body: body, Replays: replays, entry: entry, sha: sha1Hex(body)}
}

// readTraces reads the stored trace contexts of tasks, for the handlers'
// spans (one MGET: their keys depend on the tasks taken, so take.lua,
// which names every key it touches in KEYS, cannot read them). Without a
// tracer they are not read: complete.lua carries them to the done events
// and fail reads one for a dead-letter entry. A failure to read them only
// loses them.
func (s *session) readTraces(ctx context.Context, q *queue, tasks []*Task) {
	if len(tasks) == 0 {
		return
	}
	keys := make([]string, len(tasks))
	for i, t := range tasks {
		keys[i] = keyspace.TraceContext(s.w.o.Prefix, q.name, t.Body)
	}
	vals, err := s.w.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		s.w.log.Debug("reading trace contexts", "err", err)
		return
	}
	for i, v := range vals {
		if tp, ok := v.(string); ok {
			tasks[i].traceparent = tp
		}
	}
}
