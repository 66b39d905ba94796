package worker

import (
	"context"
	"sync"
	"time"
)

// session is what one lease runs: its takers, handlers and completers.
type session struct {
	w     *Worker
	lease context.Context
	token string
	// handlers is the context of the handlers: the lease's, cancelled
	// too by the drain timeout.
	handlers context.Context
	cancel   context.CancelFunc
	sem      chan struct{}  // a slot per task held: Concurrency + Prefetch
	run      chan struct{}  // a slot per handler running: Concurrency
	stopping chan struct{}  // closed once taking stopped: held tasks are not started
	wg       sync.WaitGroup // handlers
	done     map[*queue]chan *Task
	sending  sync.WaitGroup // completions being sent to done

	mu       sync.Mutex
	inflight map[*Task]*queue
	taken    uint64 // tasks taken so far: the next Task.seq
	over     bool   // results are no longer accepted (abandoned handlers)
}

// newSession is the session of lease, with a completion channel per queue.
func (w *Worker) newSession(lease context.Context, token string) *session {
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
	for _, q := range w.queues {
		s.done[q] = make(chan *Task, 2*w.o.Concurrency)
	}
	s.handlers, s.cancel = context.WithCancel(lease)
	return s
}

// startCompleters starts a completer per queue, which completes what its
// channel receives until it is closed; wait on the group returned.
func (s *session) startCompleters() *sync.WaitGroup {
	var wg sync.WaitGroup
	for q, ch := range s.done {
		wg.Go(func() { s.complete(q, ch) })
	}
	return &wg
}

// takeAll runs a taker per queue until ctx is done.
func (s *session) takeAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, q := range s.w.queues {
		wg.Go(func() { s.take(ctx, q) })
	}
	wg.Wait()
}

// drain waits for the handlers in flight up to the drain timeout (not at
// all once the lease is lost), cancels the others and gives them a second
// to return; it returns the tasks of those that did not, which the
// session gives up on: they are handed back and what their handlers
// return is ignored.
func (s *session) drain(lease context.Context) map[*queue][]*Task {
	w := s.w
	finished := make(chan struct{})
	// Not waited for: it outlives drain while a handler ignores its
	// cancelled context, which the session gives up on (below).
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
	grace := time.NewTimer(time.Second)
	select {
	case <-finished:
	case <-grace.C:
	}
	grace.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.over = true
	left := map[*queue][]*Task{}
	for t, q := range s.inflight {
		left[q] = append(left[q], t)
	}
	s.inflight = map[*Task]*queue{}
	return left
}

// release gives back n handler slots.
func (s *session) release(n int) {
	for range n {
		<-s.sem
	}
}

// forget removes t from the tasks in flight, reporting whether it was
// there (false: the session gave up on it and handed it back). When send
// is set, the caller is about to send t to its completer and must call
// s.sending.Done once it has.
func (s *session) forget(t *Task, send bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.inflight[t]; !ok || s.over {
		return false
	}
	delete(s.inflight, t)
	if send {
		s.sending.Add(1)
	}
	return true
}
