package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/resc-go/resc/internal/consumer"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
	"github.com/resc-go/resc/worker"
)

// env is a redis-server and a client of it.
type env struct {
	t   *testing.T
	rdb *redis.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{t: t, rdb: redistest.Start(t).Client()}
}

// testDeadAfter is the DeadAfter of the test options.
const testDeadAfter = 500 * time.Millisecond

// newWorker is worker.New, failing the test on an error.
func (e *env) newWorker(o worker.Options) *worker.Worker {
	e.t.Helper()
	w, err := worker.New(e.rdb, o)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// handle is w.Handle, failing the test on an error.
func (e *env) handle(w *worker.Worker, queue string, h worker.Handler, opts ...worker.HandleOption) {
	e.t.Helper()
	if err := w.Handle(queue, h, opts...); err != nil {
		e.t.Fatal(err)
	}
}

// options are fast test options.
func (e *env) options(id string) worker.Options {
	return worker.Options{
		ID: id, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: testDeadAfter,
		RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// testWriter logs through t.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// start runs w until the test ends or stop is called; stop returns Run's
// error.
func (e *env) start(w *worker.Worker) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return within 30 s")
			}
		})
		return err
	}
	e.t.Cleanup(func() { _ = stop() })
	return stop
}

func (e *env) push(queue string, tasks ...string) {
	e.t.Helper()
	args := make([]any, len(tasks))
	for i, t := range tasks {
		args[i] = t
	}
	if err := e.rdb.LPush(context.Background(), queue, args...).Err(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) llen(key string) int64 {
	e.t.Helper()
	n, err := e.rdb.LLen(context.Background(), key).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestCompletes: every task is handled, its done event pushed once, its
// dedup set member and trace context removed, the taken list left empty,
// the worker announced and registered as a worker, then deregistered.
func TestCompletes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 2000
	tasks := make([]string, n)
	for i := range tasks {
		tasks[i] = fmt.Sprintf("task-%d", i)
		e.rdb.ZAdd(ctx, "todo-set", redis.Z{Score: 1, Member: tasks[i]})
	}
	e.push("todo", tasks...)
	var mu sync.Mutex
	seen := map[string]int{}
	w := e.newWorker(e.options("w1"))
	e.handle(w, "todo", func(_ context.Context, t worker.Task) error {
		mu.Lock()
		seen[t.Body]++
		mu.Unlock()
		return nil
	}, worker.WithSet("todo-set"), worker.WithDone("done"), worker.WithDoneEvent(func(t worker.Task) string { return "did " + t.Body }))
	stop := e.start(w)
	testutil.Eventually(t, "all done events", func() bool { return e.llen("done") == n })
	info, err := e.rdb.Get(ctx, keyspace.ReplicaInfo("resc:", "w1")).Result()
	if err != nil || !strings.Contains(info, `"kind":"worker"`) || !strings.Contains(info, "todo/taken/w1") {
		t.Errorf("registration info %q (%v), want a worker owning todo/taken/w1", info, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	done := testutil.List(t, e.rdb, "done")
	slices.Sort(done)
	want := make([]string, n)
	for i, task := range tasks {
		want[i] = "did " + task
	}
	slices.Sort(want)
	if !slices.Equal(done, want) {
		t.Errorf("done events differ from one per task (%d events)", len(done))
	}
	for _, task := range tasks {
		if seen[task] != 1 {
			t.Fatalf("task %q handled %d times, want 1", task, seen[task])
		}
	}
	if c := e.rdb.ZCard(ctx, "todo-set").Val(); c != 0 {
		t.Errorf("%d tasks left in the dedup set", c)
	}
	if l := e.llen(w.TakenList("todo")); l != 0 {
		t.Errorf("%d tasks left in the taken list", l)
	}
	if q := e.rdb.HExists(ctx, keyspace.WorkerQueues("resc:"), "todo").Val(); !q {
		t.Error("queue not announced in the worker queues")
	}
	if ex := e.rdb.Exists(ctx, keyspace.Replica("resc:", "w1")).Val(); ex != 0 {
		t.Error("still registered after Run returned")
	}
	if s := w.Stats(); s.Completed != n || s.Taken != n {
		t.Errorf("stats: completed %d, taken %d, want %d", s.Completed, s.Taken, n)
	}
}

// TestRetriesThenDeadLetters: a failing task is attempted MaxAttempts
// times, with its failure count seen by the handler, then dead-lettered
// with the reason; a permanent error dead-letters at once; a panic is a
// failure and the task completes on its retry.
func TestRetriesThenDeadLetters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.push("todo", "fails", "permanent", "panics")
	var mu sync.Mutex
	calls := map[string][]int{}
	o := e.options("w1")
	o.MaxAttempts = 3
	reader := sdkmetric.NewManualReader()
	o.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	w := e.newWorker(o)
	e.handle(w, "todo", func(_ context.Context, t worker.Task) error {
		mu.Lock()
		calls[t.Body] = append(calls[t.Body], t.Failures)
		mu.Unlock()
		switch t.Body {
		case "fails":
			return errors.New("boom")
		case "permanent":
			return worker.Permanent(errors.New("bad task"))
		case "panics":
			if t.Failures == 0 {
				panic("oops")
			}
		}
		return nil
	}, worker.WithDone("done"))
	stop := e.start(w)
	testutil.Eventually(t, "two dead and one done", func() bool { return e.llen("todo/dead") == 2 && e.llen("done") == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := calls["fails"]; !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("failing task attempted with failure counts %v, want [0 1 2]", got)
	}
	if got := calls["permanent"]; !slices.Equal(got, []int{0}) {
		t.Errorf("permanent failure attempted %v, want once", got)
	}
	if got := calls["panics"]; !slices.Equal(got, []int{0, 1}) {
		t.Errorf("panicking task attempted %v, want twice", got)
	}
	reasons := map[string]*consumer.Entry{}
	for _, s := range testutil.List(t, e.rdb, "todo/dead") {
		d, err := consumer.Decode(s)
		if err != nil {
			t.Fatal(err)
		}
		reasons[d.Event] = d
	}
	if d := reasons["fails"]; d == nil || d.Attempts != 3 || !strings.Contains(d.Reason, "failed 3 times, last: boom") || d.Replica != "w1" || d.Queue != "todo" {
		t.Errorf("dead entry of the failing task: %+v", d)
	}
	if d := reasons["permanent"]; d == nil || !strings.Contains(d.Reason, "permanent failure") || !strings.Contains(d.Reason, "bad task") {
		t.Errorf("dead entry of the permanent failure: %+v", d)
	}
	if n := e.rdb.HLen(ctx, keyspace.TaskFailures("resc:", "todo")).Val(); n != 0 {
		t.Errorf("%d failure counts left", n)
	}
	if p := w.Stats().Panics; p != 1 {
		t.Errorf("%d panics counted, want 1", p)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && len(sum.DataPoints) == 1 {
				got[m.Name] = sum.DataPoints[0].Value
			}
		}
	}
	want := map[string]int64{"resc.worker.dead_lettered": 2, "resc.worker.completed": 1, "resc.worker.retried": 3, "resc.worker.panics": 1}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("metric %s = %d, want %d (all: %v)", name, got[name], v, got)
		}
	}
}

// TestDrainHandsBack: on cancel, handlers in flight get DrainTimeout to
// finish; those that do complete, the others are cancelled and their
// tasks handed back to the queue, taken next; the taken list ends empty.
func TestDrainHandsBack(t *testing.T) {
	e := newEnv(t)
	e.push("todo", "slow-1", "slow-2", "quick")
	o := e.options("w1")
	o.DrainTimeout = 300 * time.Millisecond
	var started atomic.Int32
	release := make(chan struct{})
	w := e.newWorker(o)
	e.handle(w, "todo", func(ctx context.Context, t worker.Task) error {
		started.Add(1)
		if t.Body == "quick" {
			<-release // finishes within the drain timeout
			return nil
		}
		<-ctx.Done() // cannot finish: cancelled after the drain timeout
		return ctx.Err()
	}, worker.WithDone("done"))
	stop := e.start(w)
	testutil.Eventually(t, "three handlers running", func() bool { return started.Load() == 3 })
	go func() {
		time.Sleep(50 * time.Millisecond) // within the drain timeout
		close(release)
	}()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	testutil.AssertList(t, e.rdb, "done", "quick")
	// Handed back oldest first at the consuming end: slow-1 is taken next.
	testutil.AssertList(t, e.rdb, "todo", "slow-2", "slow-1")
	testutil.AssertList(t, e.rdb, w.TakenList("todo"))
	if h := w.Stats().HandedBack; h != 2 {
		t.Errorf("%d handed back, want 2", h)
	}
}

// TestTraceContinued: the handler's span is a child of the trace context
// resc-go stored with the task, and the done event's stored trace context
// continues that trace.
func TestTraceContinued(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	e.rdb.Set(ctx, keyspace.TraceContext("resc:", "todo", "traced"), parent, time.Hour)
	e.push("todo", "traced", "plain")
	rec := tracetest.NewSpanRecorder()
	o := e.options("w1")
	o.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	w := e.newWorker(o)
	e.handle(w, "todo", func(context.Context, worker.Task) error { return nil }, worker.WithDone("done"))
	stop := e.start(w)
	testutil.Eventually(t, "both done", func() bool { return e.llen("done") == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var traced sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		for _, a := range s.Attributes() {
			if a.Key == "resc.task" && a.Value.AsString() == "traced" {
				traced = s
			}
		}
	}
	if traced == nil {
		t.Fatalf("no span of the traced task among %d", len(rec.Ended()))
	}
	if got := traced.Parent().TraceID().String(); got != "0af7651916cd43dd8448eb211c80319c" || traced.Parent().SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("handler span's parent %v, want the stored context", traced.Parent())
	}
	done, err := e.rdb.Get(ctx, keyspace.TraceContext("resc:", "done", "traced")).Result()
	if err != nil || !strings.Contains(done, "0af7651916cd43dd8448eb211c80319c-"+traced.SpanContext().SpanID().String()) {
		t.Errorf("done event's trace context %q (%v), want the handler span of trace 0af7...", done, err)
	}
	if n := e.rdb.Exists(ctx, keyspace.TraceContext("resc:", "todo", "traced")).Val(); n != 0 {
		t.Error("the task's trace context was not removed")
	}
}

// TestReplayStampStripped: a task the leader replayed reaches the handler
// bare, with its replay count, and a resc (Canop) plain task as it is.
func TestReplayStampStripped(t *testing.T) {
	e := newEnv(t)
	e.push("todo", keyspace.StampReplays(2, "again"), "plain")
	got := make(chan worker.Task, 2)
	w := e.newWorker(e.options("w1"))
	e.handle(w, "todo", func(_ context.Context, t worker.Task) error { got <- t; return nil }, worker.WithDone("done"))
	e.start(w)
	byBody := map[string]worker.Task{}
	for range 2 {
		select {
		case tk := <-got:
			byBody[tk.Body] = tk
		case <-time.After(10 * time.Second):
			t.Fatal("tasks not handled")
		}
	}
	if tk, ok := byBody["again"]; !ok || tk.Replays != 2 {
		t.Errorf("replayed task %+v, want body again with 2 replays", tk)
	}
	if tk, ok := byBody["plain"]; !ok || tk.Replays != 0 {
		t.Errorf("plain task %+v", tk)
	}
	testutil.Eventually(t, "done events", func() bool { return e.llen("done") == 2 })
	done := testutil.List(t, e.rdb, "done")
	slices.Sort(done)
	if !slices.Equal(done, []string{"again", "plain"}) {
		t.Errorf("done events %q, want the bare tasks", done)
	}
}

// TestOwnListReplayed: a worker that starts again under a fixed id
// replays what its taken list still holds, counted as a crash replay.
func TestOwnListReplayed(t *testing.T) {
	e := newEnv(t)
	e.push(keyspace.WorkerTakenList("todo", "fixed"), "left-over")
	got := make(chan worker.Task, 1)
	w := e.newWorker(e.options("fixed"))
	e.handle(w, "todo", func(_ context.Context, t worker.Task) error { got <- t; return nil }, worker.WithDone("done"))
	e.start(w)
	select {
	case tk := <-got:
		if tk.Body != "left-over" || tk.Replays != 1 {
			t.Errorf("task %+v, want left-over replayed once", tk)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("left-over task not handled")
	}
}

// TestOwnListNoReplays: with MaxReplays NoReplays (max_replays 0), what
// the worker's own taken list holds at start is dead-lettered at once,
// not handled; with MaxReplays 0 (the default, 3) it is handled
// (TestOwnListReplayed).
func TestOwnListNoReplays(t *testing.T) {
	e := newEnv(t)
	e.push(keyspace.WorkerTakenList("todo", "fixed"), "left-over")
	handled := make(chan worker.Task, 1)
	o := e.options("fixed")
	o.MaxReplays = worker.NoReplays
	w := e.newWorker(o)
	e.handle(w, "todo", func(_ context.Context, t worker.Task) error { handled <- t; return nil })
	e.start(w)
	testutil.Eventually(t, "left-over dead-lettered", func() bool { return e.llen(keyspace.DeadList("todo")) == 1 })
	if n := e.llen(keyspace.WorkerTakenList("todo", "fixed")); n != 0 {
		t.Errorf("taken list holds %d, want 0", n)
	}
	select {
	case tk := <-handled:
		t.Errorf("task %+v handled, want it dead-lettered", tk)
	default:
	}
}

// TestRefusesBadSetup: each mistake is reported where it is made: New
// refuses bad options, Handle a bad queue, Run a worker without a queue
// or whose id a live registration holds.
func TestRefusesBadSetup(t *testing.T) {
	e := newEnv(t)
	nop := func(context.Context, worker.Task) error { return nil }
	for _, c := range []struct {
		name string
		o    func(*worker.Options)
		want string
	}{
		{"slash in id", func(o *worker.Options) { o.ID = "a/b" }, "no '/'"},
		{"sub-second block", func(o *worker.Options) { o.Block = 1500 * time.Millisecond }, "whole number of seconds"},
		{"negative block", func(o *worker.Options) { o.Block = -time.Second }, "Block is -1s"},
		{"heartbeat too slow", func(o *worker.Options) { o.HeartbeatInterval = o.DeadAfter }, "below half of DeadAfter"},
	} {
		o := e.options("w")
		c.o(&o)
		if _, err := worker.New(e.rdb, o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New = %v, want an error with %q", c.name, err, c.want)
		}
	}
	if _, err := worker.New(nil, e.options("w")); err == nil {
		t.Error("New with a nil client: no error")
	}
	w := e.newWorker(e.options("w"))
	if err := w.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no queue") {
		t.Errorf("Run without a queue = %v, want \"no queue\"", err)
	}
	for _, c := range []struct {
		name, queue string
		h           worker.Handler
		opts        []worker.HandleOption
		want        string
	}{
		{"empty name", "", nop, nil, "empty queue name"},
		{"nil handler", "q2", nil, nil, "nil handler"},
		{"twice", "q", nop, nil, "twice"},
		{"done is queue", "q3", nop, []worker.HandleOption{worker.WithDone("q3")}, "cannot be the queue itself"},
	} {
		if c.name == "twice" {
			e.handle(w, "q", nop)
		}
		if err := w.Handle(c.queue, c.h, c.opts...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Handle = %v, want an error with %q", c.name, err, c.want)
		}
	}
	// An id held by a live registration is refused.
	o := e.options("taken-id")
	e.rdb.Set(context.Background(), keyspace.Replica("resc:", "taken-id"), "other", time.Hour)
	w = e.newWorker(o)
	e.handle(w, "q", nop)
	if err := w.Run(context.Background()); !errors.Is(err, worker.ErrIDInUse) {
		t.Errorf("Run with an id in use = %v, want ErrIDInUse", err)
	}
}

// TestPermanentNil: Permanent(nil) is ErrPermanent, printed plainly.
func TestPermanentNil(t *testing.T) {
	err := worker.Permanent(nil)
	if !errors.Is(err, worker.ErrPermanent) || strings.Contains(err.Error(), "%!") {
		t.Errorf("Permanent(nil) = %q", err)
	}
	if err := worker.Permanent(errors.New("bad")); !errors.Is(err, worker.ErrPermanent) || err.Error() != "permanent failure: bad" {
		t.Errorf("Permanent(bad) = %q", err)
	}
}

// TestCompletionFenced: a task that left the taken list while its handler
// ran (the leader replayed it: the worker was presumed dead) completes
// nothing when the handler returns: no done event, counted as fenced.
func TestCompletionFenced(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.push("todo", "zombie")
	running, release := make(chan struct{}), make(chan struct{})
	w := e.newWorker(e.options("w1"))
	e.handle(w, "todo", func(context.Context, worker.Task) error {
		close(running)
		<-release
		return nil
	}, worker.WithDone("done"))
	stop := e.start(w)
	<-running
	// What the leader's replay does: the task leaves the taken list.
	if n := e.rdb.LRem(ctx, w.TakenList("todo"), 1, "zombie").Val(); n != 1 {
		t.Fatalf("task not in the taken list (LREM %d)", n)
	}
	close(release)
	testutil.Eventually(t, "the completion fenced", func() bool { return w.Stats().Fenced == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := e.llen("done"); n != 0 {
		t.Errorf("%d done events, want none", n)
	}
	if c := w.Stats().Completed; c != 0 {
		t.Errorf("%d completed, want 0", c)
	}
}

// TestFenceLost: when the worker's fence on a queue disappears (the
// leader's replay deletes it in the script that moves the taken list),
// the session ends within a heartbeat interval: the handler's context is
// cancelled and nothing more is written under the old session. The
// worker starts a new session, which writes the fence again with its
// registration token and replays its own taken list: the task is handled
// again and its done event pushed once. A stopped worker deletes its
// fence.
func TestFenceLost(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.push("todo", "t1")
	var attempts atomic.Int32
	running := make(chan struct{})
	cancelled := make(chan error, 1)
	w := e.newWorker(e.options("w1"))
	e.handle(w, "todo", func(ctx context.Context, _ worker.Task) error {
		if attempts.Add(1) == 1 {
			close(running)
			<-ctx.Done()
			cancelled <- ctx.Err()
			return ctx.Err()
		}
		return nil
	}, worker.WithDone("done"))
	stop := e.start(w)
	<-running
	fence := keyspace.WorkerFence("resc:", "todo", "w1")
	token, err := e.rdb.Get(ctx, keyspace.Replica("resc:", "w1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := e.rdb.Get(ctx, fence).Val(); got != token {
		t.Fatalf("fence %q holds %q, want the registration token %q", fence, got, token)
	}
	if ttl := e.rdb.PTTL(ctx, fence).Val(); ttl <= 0 || ttl > testDeadAfter {
		t.Errorf("fence TTL %v, want up to dead-after %v", ttl, testDeadAfter)
	}
	if err := e.rdb.Del(ctx, fence).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-cancelled:
		if err == nil {
			t.Error("handler context done without an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context was not cancelled after the fence was deleted")
	}
	testutil.Eventually(t, "the task handled again and done", func() bool { return e.llen("done") == 1 })
	if got := e.rdb.Get(ctx, fence).Val(); got != token {
		t.Errorf("fence after the new session %q, want the token %q again", got, token)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	testutil.AssertList(t, e.rdb, "done", "t1")
	if n := attempts.Load(); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
	if n := e.rdb.Exists(ctx, fence).Val(); n != 0 {
		t.Error("fence left after Run returned")
	}
}
