package worker

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/membership"
)

var (
	//go:embed take.lua
	takeSrc    string
	takeScript = script.New(takeSrc, script.TypeCheck, script.ReplayStamp)

	//go:embed complete.lua
	completeSrc    string
	completeScript = script.New(completeSrc, script.TypeCheck)

	//go:embed fail.lua
	failSrc    string
	failScript = script.New(failSrc, script.TypeCheck)

	//go:embed fence.lua
	fenceSrc    string
	fenceScript = script.New(fenceSrc, script.TypeCheck)

	//go:embed handback.lua
	handbackSrc    string
	handbackScript = script.New(handbackSrc, script.TypeCheck)
)

// Defaults of Options.
const (
	DefaultConcurrency   = 10
	DefaultBatch         = 64
	DefaultDrainTimeout  = 10 * time.Second
	DefaultMaxAttempts   = 5
	DefaultRetryDelay    = time.Second
	DefaultMaxRetryDelay = 5 * time.Minute
	DefaultMaxReplays    = 3
	DefaultTraceTTL      = 24 * time.Hour
	DefaultBlock         = time.Second
)

// scriptBudget bounds the bytes one take moves (beyond its first task), as
// resc-go's own scripts are bounded: a queue of huge tasks does not hold
// Redis, nor anyone's heartbeat, behind one call.
const scriptBudget = 4 << 20

// maxCompleteBatch is the most tasks one completion script completes.
const maxCompleteBatch = 256

// Task is one task taken from a queue.
type Task struct {
	// Queue is the queue it was taken from.
	Queue string
	// Body is the task, as the rule that made it wrote it (or as any
	// producer pushed it): the plain string, without the replay stamp
	// the leader may have put on it.
	Body string
	// Replays is how many times the task was replayed after a worker
	// holding it died (or lost its lease); 0 the first time.
	Replays int
	// Failures is how many times a handler returned an error for it
	// before this attempt.
	Failures int

	entry       string // as it is in the taken list
	sha         string // SHA1 hex of Body: its field in the failure counts
	traceparent string // the trace context stored with the task, "" if none
	seq         uint64 // the session's take order: tasks are handed back oldest first
}

// Handler handles a task. A nil error completes it: it leaves the taken
// list and its done event is pushed, in one script. An error (or a panic,
// caught) is a failed attempt: the task is retried later with backoff,
// and dead-lettered after Options.MaxAttempts attempts, or at once when
// the error wraps ErrPermanent (Permanent). ctx is cancelled when the
// worker must stop: its lease was lost, or Run's context is done and the
// drain timeout has passed; the task is then handed back (or replayed by
// the leader), and whatever the handler returns is ignored.
type Handler func(ctx context.Context, t Task) error

// ErrPermanent marks a handler error that retrying cannot fix: the task
// goes to the dead-letter list at once.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so that the task is dead-lettered without retries.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// Options configure a Worker. A zero field means its default.
type Options struct {
	// ID is the worker id, unique among the live workers and replicas of
	// the deployment, without '/' or spaces. Default
	// "<hostname>-<pid>-<random>": a restart gets a new id and the leader
	// replays the taken lists of the old one; a fixed id replays its own
	// taken lists itself when it starts again.
	ID string
	// Prefix is resc-go's key prefix (the configuration's key_prefix).
	// Default "resc:".
	Prefix string
	// Concurrency is how many handlers run at once, all queues together.
	// Default 10.
	Concurrency int
	// Prefetch is how many tasks the worker may hold, taken but not yet
	// started, beside the Concurrency running: takes then move more tasks
	// per round trip. Other workers cannot take them meanwhile; a drain
	// hands them back at once. Default Concurrency; negative means none.
	Prefetch int
	// Batch is the most tasks one take moves. Default 64 (never more than
	// the free slots of Concurrency plus Prefetch).
	Batch int
	// Block is how long a take waits on an empty queue before it looks
	// again (BLMOVE timeout), in whole seconds as go-redis sends it: it
	// is also how long Run may take to notice its context is done.
	// Default and minimum 1 s.
	Block time.Duration
	// DrainTimeout is how long Run waits, once its context is done, for
	// the handlers in flight to finish; then their contexts are cancelled
	// and their tasks handed back to their queue. Default 10 s.
	DrainTimeout time.Duration
	// MaxAttempts is how many times a task is attempted before it goes to
	// the dead-letter list "<queue>/dead". Default 5; 1 means no retry.
	MaxAttempts int
	// RetryDelay is the delay before the 2nd attempt, doubling at each
	// further one up to MaxRetryDelay. Defaults 1 s and 5 min.
	RetryDelay, MaxRetryDelay time.Duration
	// MaxReplays caps the crash replays of a task the worker finds in its
	// own taken lists when a lease starts (the leader applies its
	// max_replays to the lists of dead workers). Default 3.
	MaxReplays int
	// Cluster are the heartbeat timings (HeartbeatInterval, DeadAfter),
	// the same as the replicas' (the configuration's cluster object);
	// Prefix is ignored (Options.Prefix counts).
	Cluster membership.Settings
	// TraceTTL is the expiry of the done events' stored trace contexts.
	// Default 24 h.
	TraceTTL time.Duration
	// TraceLink starts each handler's span as a new trace linked to the
	// task's stored trace context, instead of its child (the default):
	// match the replicas' RESC_TRACE_PARENT.
	TraceLink bool
	// TracerProvider makes the handlers' spans. Default otel's global.
	TracerProvider trace.TracerProvider
	// MeterProvider receives the counters resc.worker.* (Stats); nil
	// records none.
	MeterProvider metric.MeterProvider
	// Logger; default slog.Default(), with component=worker and the id.
	Logger *slog.Logger
	// Version is written in the worker's registration. Default "sdk".
	Version string
}

// HandleOption configures one queue of Handle.
type HandleOption func(*queue)

// WithSet names the dedup set of the queue (the rules' set): a task
// leaves it when it is taken, so that the same task can be made again.
func WithSet(set string) HandleOption { return func(q *queue) { q.set = set } }

// WithDone makes each completed task push its done event to doneQueue
// (resc's protocol: an input queue watched by resc-go), by default the
// task itself.
func WithDone(doneQueue string) HandleOption { return func(q *queue) { q.done = doneQueue } }

// WithDoneEvent sets the done event of a task (default: its body).
func WithDoneEvent(event func(Task) string) HandleOption {
	return func(q *queue) { q.doneEvent = event }
}

// queue is one queue a Worker handles.
type queue struct {
	name, taken, set, done string
	fence                  string // keyspace.WorkerFence of the worker on it
	doneEvent              func(Task) string
	handler                Handler
}

// Stats count what a Worker did since it was created.
type Stats struct {
	Taken        atomic.Int64 // tasks taken
	Completed    atomic.Int64 // tasks completed (done event pushed)
	Retried      atomic.Int64 // failed attempts put in the delay schedule
	DeadLettered atomic.Int64 // tasks sent to the dead-letter list
	Fenced       atomic.Int64 // completions or failures refused: the task was no longer this worker's
	HandedBack   atomic.Int64 // tasks given back to their queue at shutdown
	Replayed     atomic.Int64 // tasks of its own taken lists replayed when a lease started
	Panics       atomic.Int64 // handler panics caught
}

// Worker takes tasks from resc-go's queues into its own taken lists, runs
// their handlers and completes them, under a registration the leader
// watches. Create it with New, add queues with Handle, then Run.
type Worker struct {
	rdb     redis.UniversalClient
	o       Options
	log     *slog.Logger
	tracer  trace.Tracer
	queues  []*queue
	dialect script.Dialect
	stats   Stats
	seq     atomic.Int64
}

// New returns a worker using rdb, whose options should honour context
// deadlines (redis.Options.ContextTimeoutEnabled).
func New(rdb redis.UniversalClient, o Options) *Worker {
	if o.ID == "" {
		o.ID = defaultID()
	}
	if o.Prefix == "" {
		o.Prefix = "resc:"
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	switch {
	case o.Prefetch == 0:
		o.Prefetch = o.Concurrency
	case o.Prefetch < 0:
		o.Prefetch = 0
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	o.Block = max(o.Block.Truncate(time.Second), DefaultBlock)
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = DefaultRetryDelay
	}
	if o.MaxRetryDelay <= 0 {
		o.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if o.MaxReplays == 0 {
		o.MaxReplays = DefaultMaxReplays
	}
	if o.TraceTTL <= 0 {
		o.TraceTTL = DefaultTraceTTL
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	if o.Version == "" {
		o.Version = "sdk"
	}
	o.Cluster.Prefix = o.Prefix
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	w := &Worker{
		rdb:    rdb,
		o:      o,
		log:    log.With("component", "worker", "worker", o.ID),
		tracer: o.TracerProvider.Tracer("github.com/resc-go/resc/worker"),
	}
	if o.MeterProvider != nil {
		if err := w.registerMetrics(o.MeterProvider); err != nil {
			w.log.Warn("metrics: worker counters", "err", err)
		}
	}
	return w
}

// defaultID is "<hostname>-<pid>-<random>".
func defaultID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", strings.ReplaceAll(host, "/", "_"), os.Getpid(), hex.EncodeToString(b[:]))
}

// Handle makes the worker take the tasks of queueName and run h on each.
// Call it before Run, once per queue.
func (w *Worker) Handle(queueName string, h Handler, opts ...HandleOption) {
	q := &queue{name: queueName, taken: keyspace.WorkerTakenList(queueName, w.o.ID), handler: h,
		fence: keyspace.WorkerFence(w.o.Prefix, queueName, w.o.ID)}
	for _, o := range opts {
		o(q)
	}
	w.queues = append(w.queues, q)
}

// ID is the worker id.
func (w *Worker) ID() string { return w.o.ID }

// Stats returns the worker's counters.
func (w *Worker) Stats() *Stats { return &w.stats }

// TakenList is the worker's taken list of queueName.
func (w *Worker) TakenList(queueName string) string {
	return keyspace.WorkerTakenList(queueName, w.o.ID)
}

// check refuses what would make the worker unsafe.
func (w *Worker) check() error {
	if len(w.queues) == 0 {
		return errors.New("worker: no queue: call Handle before Run")
	}
	if strings.ContainsFunc(w.o.ID, func(r rune) bool { return r == '/' || r <= ' ' }) || len(w.o.ID) > 200 {
		return fmt.Errorf("worker: id %q: at most 200 bytes, no '/', spaces or control characters", w.o.ID)
	}
	seen := map[string]bool{}
	for _, q := range w.queues {
		switch {
		case q.name == "":
			return errors.New("worker: Handle: empty queue name")
		case q.handler == nil:
			return fmt.Errorf("worker: Handle(%q): nil handler", q.name)
		case seen[q.name]:
			return fmt.Errorf("worker: Handle(%q) called twice", q.name)
		case q.done == q.name:
			return fmt.Errorf("worker: queue %q: the done queue cannot be the queue itself", q.name)
		}
		seen[q.name] = true
		if keyspace.OnCluster(w.rdb) {
			if err := w.sameSlot(q); err != nil {
				return err
			}
		}
	}
	return w.o.Cluster.Validate()
}

// sameSlot checks that every key the scripts of q touch hashes to the
// slot of the queue, as a Redis Cluster needs: a script runs on one node.
func (w *Worker) sameSlot(q *queue) error {
	p := w.o.Prefix
	keys := []string{q.taken, q.fence, keyspace.TaskFailures(p, q.name), keyspace.DelaySchedule(p, q.name),
		keyspace.DeadList(q.name), keyspace.TraceContext(p, q.name, "task")}
	if q.set != "" {
		keys = append(keys, q.set)
	}
	if q.done != "" {
		keys = append(keys, q.done, keyspace.TraceContext(p, q.done, "event"))
	}
	want := config.Slot(q.name)
	for _, k := range keys {
		if config.Slot(k) != want {
			return fmt.Errorf("worker: queue %q on Redis Cluster: key %q is in slot %d, the queue in %d: "+
				"give the queue a hash tag ({tag}name), the same in its set and done queue, and a key prefix without braces "+
				"(see docs/redis.md)", q.name, k, config.Slot(k), want)
		}
	}
	return nil
}

// sha1Hex is the field of a task in the failure counts.
func sha1Hex(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// errFenced is a script refusing to write: the registration is lost.
var errFenced = errors.New("worker: registration lost")

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

// newTag is a delay schedule member tag, unique to this worker.
func (w *Worker) newTag(now time.Time) string {
	return fmt.Sprintf("%d-w%s-%d", now.UnixMilli(), w.o.ID, w.seq.Add(1))
}

// retryDelay is the delay after the n-th failure (n >= 1).
func (w *Worker) retryDelay(n int) time.Duration {
	d := w.o.RetryDelay
	for i := 1; i < n && d < w.o.MaxRetryDelay; i++ {
		d *= 2
	}
	return min(d, w.o.MaxRetryDelay)
}
