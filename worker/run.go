package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/registry"
	"github.com/resc-go/resc/internal/script"
)

// propagator reads and writes the W3C traceparent resc-go stores.
var propagator = propagation.TraceContext{}

// Run registers the worker, then takes and handles tasks until ctx is
// done; it then stops taking, waits up to DrainTimeout for the handlers
// in flight, hands the tasks of the others back to their queues,
// deregisters and returns nil. It returns an error when it cannot start
// (no queue, Redis unreachable, the id in use by a live worker or
// replica) or when the registration cannot be renewed any more (the id
// was taken over).
//
// While the registration's lease is live the worker takes tasks; when it
// is lost (Redis unreachable for longer than the lease), the handlers'
// contexts are cancelled and nothing more is completed: the leader
// replays the worker's taken lists once it is presumed dead, and the
// worker, registered again, replays what is left in them itself.
func (w *Worker) Run(ctx context.Context) error {
	if len(w.queues) == 0 {
		return errors.New("worker: no queue: call Handle before Run")
	}
	member, err := w.register(ctx)
	if err != nil {
		return err
	}
	// Two goroutines beside the sessions, each waited for before Run
	// returns: the registration's heartbeats (its end also told to the
	// sessions through memberDone) and the promoter of due retries.
	memberCtx, stopMember := context.WithCancel(context.WithoutCancel(ctx))
	memberDone := make(chan error, 1)
	var membering, promoting sync.WaitGroup
	membering.Go(func() { memberDone <- member.Run(memberCtx) })
	promoting.Go(func() { w.promote(ctx) })
	token, runErr := w.sessions(ctx, member, memberDone)
	promoting.Wait()
	stopMember()
	if err := <-memberDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("worker: %w", err)
	}
	membering.Wait()
	// Shutdown, second phase: taking and the handlers have stopped and
	// what was left is handed back; deregister, then drop the fences.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := member.Deregister(dctx); err != nil && !errors.Is(err, registry.ErrNotRegistered) {
		w.log.Warn("deregistering", "err", err)
	}
	if token != "" {
		w.releaseFences(dctx, token)
	}
	return runErr
}

// register detects the script dialect, announces the worker's queues to
// the leader and registers the worker.
func (w *Worker) register(ctx context.Context) (*registry.Membership, error) {
	d, err := script.Detect(ctx, w.rdb)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
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
		return nil, fmt.Errorf("worker: announcing its queues: %w", err)
	}
	host, _ := os.Hostname()
	member, err := registry.Register(ctx, w.rdb, registry.Info{
		ID: w.o.ID, Host: host, PID: os.Getpid(), Version: w.o.Version, Started: now.UTC(),
		TakenLists: lists, Kind: "worker",
	}, registry.Options{Settings: w.reg, Dialect: d, Logger: w.log, WaitForExpiry: true})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return member, nil
}

// sessions runs a session on each lease of member until ctx is done or
// the registration cannot be renewed (an error from memberDone); it
// returns that error and the token of the last lease.
func (w *Worker) sessions(ctx context.Context, member *registry.Membership, memberDone chan error) (token string, runErr error) {
	for ctx.Err() == nil {
		lease, err := member.WaitLease(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				return token, err
			}
			return token, nil
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
				return token, fmt.Errorf("worker: %w", err)
			}
		default:
		}
	}
	return token, nil
}

// runSession takes and handles tasks while lease is live and ctx is not
// done. On ctx done it drains; on a lost lease (or fence) it gives up at
// once, and returns why.
func (w *Worker) runSession(ctx context.Context, lease context.Context, token string) (cause error) {
	// The session ends too when a fence is lost (keepFences), which it
	// waits for last, once the lease is cancelled.
	var fencing sync.WaitGroup
	defer fencing.Wait()
	lease, loseLease := context.WithCancelCause(lease)
	defer loseLease(nil)
	defer func() { cause = context.Cause(lease) }()
	if !w.setFences(lease, token) {
		return
	}
	over := make(chan struct{})
	defer close(over)
	fencing.Go(func() { w.keepFences(lease, over, token, loseLease) })
	s := w.newSession(lease, token)
	defer s.cancel()
	// Whatever the own taken lists hold was taken under an earlier lease.
	for _, q := range w.queues {
		w.replayOwn(lease, q)
	}
	takeCtx, stopTaking := context.WithCancel(lease)
	defer stopTaking()
	stop := context.AfterFunc(ctx, stopTaking)
	defer stop()
	completers := s.startCompleters()
	s.takeAll(takeCtx)
	close(s.stopping)
	// Shutdown, first phase: taking has stopped; drain the handlers, up
	// to the timeout (at once when the lease is lost: their work cannot
	// be completed), then give up on the others.
	left := s.drain(lease)
	s.sending.Wait()
	for _, ch := range s.done {
		close(ch)
	}
	completers.Wait()
	if lease.Err() != nil {
		return // the leader, or the next lease, replays the taken lists
	}
	for q, ts := range left {
		slices.SortFunc(ts, func(a, b *Task) int { return cmp.Compare(a.seq, b.seq) })
		w.handBack(context.WithoutCancel(ctx), q, ts)
	}
	return nil // set by the deferred call
}
