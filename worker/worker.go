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
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/registry"
	"github.com/resc-go/resc/internal/script"
)

var (
	//go:embed take.lua
	takeSrc    string
	takeScript = script.New(takeSrc, script.TypeCheck, script.ReplayStamp, script.Move)

	//go:embed complete.lua
	completeSrc    string
	completeScript = script.New(completeSrc, script.TypeCheck)

	//go:embed fail.lua
	failSrc    string
	failScript = script.New(failSrc, script.TypeCheck, script.Delay)

	//go:embed fence.lua
	fenceSrc    string
	fenceScript = script.New(fenceSrc, script.TypeCheck)
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

// NoReplays is Options.MaxReplays for no crash replay at all (the
// configuration's max_replays 0): zero there means the default.
const NoReplays = -1

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

// Permanent wraps err so that the task is dead-lettered without retries;
// Permanent(nil) is ErrPermanent itself.
func Permanent(err error) error {
	if err == nil {
		return ErrPermanent
	}
	return fmt.Errorf("%w: %w", ErrPermanent, err)
}

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
	// again (BLMOVE timeout): it is also how long Run may take to notice
	// its context is done. Default 1 s; it must be a whole number of
	// seconds (go-redis sends BLMOVE's timeout in whole seconds): New
	// refuses any other value rather than round it.
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
	// max_replays to the lists of dead workers): found once more, the task
	// goes to the dead-letter list. Zero means the default, 3, as every
	// zero of Options does; NoReplays (any negative value) means no
	// replay: such a task is dead-lettered at once, what max_replays 0
	// means in resc-go's configuration.
	MaxReplays int
	// HeartbeatInterval and DeadAfter are the registration's timings,
	// the same as the replicas' (the configuration's cluster object,
	// heartbeat_interval_ms and dead_after_ms): the registration is
	// renewed every HeartbeatInterval, and the worker is dead to the
	// leader DeadAfter after its last renewal. HeartbeatInterval must be
	// below DeadAfter/2. Defaults 1 s and 5 s.
	HeartbeatInterval, DeadAfter time.Duration
	// TraceTTL is the expiry of the done events' stored trace contexts.
	// Default 24 h.
	TraceTTL time.Duration
	// TraceLink starts each handler's span as a new trace linked to the
	// task's stored trace context, instead of its child (the default):
	// match the replicas' RESC_TRACE_PARENT.
	TraceLink bool
	// TracerProvider makes the handlers' spans; nil makes none (the
	// tasks' trace contexts are still carried to their done events).
	// Pass otel.GetTracerProvider() for the global one.
	TracerProvider trace.TracerProvider
	// MeterProvider receives the counters resc.worker.* (Stats); nil
	// records none. Pass otel.GetMeterProvider() for the global one.
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

// Stats count what a Worker did since it was created: a snapshot
// (Worker.Stats).
type Stats struct {
	Taken        int64 // tasks taken
	Completed    int64 // tasks completed (done event pushed)
	Retried      int64 // failed attempts put in the delay schedule
	DeadLettered int64 // tasks sent to the dead-letter list
	Fenced       int64 // completions or failures refused: the task was no longer this worker's
	HandedBack   int64 // tasks given back to their queue at shutdown
	Replayed     int64 // tasks of its own taken lists replayed when a lease started
	Panics       int64 // handler panics caught
}

// counters are the live counts behind Stats.
type counters struct {
	taken, completed, retried, deadLettered, fenced, handedBack, replayed, panics atomic.Int64
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
	stats   counters
	seq     atomic.Int64
	reg     registry.Settings
}

// New returns a worker using rdb, whose options should honour context
// deadlines (redis.Options.ContextTimeoutEnabled). It reports at once
// every problem of o (a bad id, a Block that is not whole seconds,
// heartbeat timings that cannot fence). Add queues with Handle, then Run.
func New(rdb redis.UniversalClient, o Options) (*Worker, error) {
	if rdb == nil {
		return nil, errors.New("worker: New: nil Redis client")
	}
	o, reg := o.withDefaults()
	if err := o.validate(reg); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	w := &Worker{rdb: rdb, o: o, reg: reg, log: log.With("component", "worker", "worker", o.ID)}
	if o.TracerProvider != nil {
		w.tracer = o.TracerProvider.Tracer("github.com/resc-go/resc/worker")
	}
	if o.MeterProvider != nil {
		if err := w.registerMetrics(o.MeterProvider); err != nil {
			return nil, fmt.Errorf("worker: metrics: %w", err)
		}
	}
	return w, nil
}

// withDefaults returns o with every zero field set to its default, and
// the registration's settings.
func (o Options) withDefaults() (Options, registry.Settings) {
	if o.ID == "" {
		o.ID = defaultID()
	}
	if o.Prefix == "" {
		o.Prefix = registry.DefaultPrefix
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
	if o.Block == 0 {
		o.Block = DefaultBlock
	}
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
	if o.Version == "" {
		o.Version = "sdk"
	}
	reg := registry.Settings{Prefix: o.Prefix, HeartbeatInterval: o.HeartbeatInterval, DeadAfter: o.DeadAfter}.WithDefaults()
	o.HeartbeatInterval, o.DeadAfter = reg.HeartbeatInterval, reg.DeadAfter
	return o, reg
}

// validate reports every problem of o, its defaults applied.
func (o Options) validate(reg registry.Settings) error {
	var errs []error
	if strings.ContainsFunc(o.ID, func(r rune) bool { return r == '/' || r <= ' ' }) || len(o.ID) > 200 {
		errs = append(errs, fmt.Errorf("worker: id %q: at most 200 bytes, no '/', spaces or control characters", o.ID))
	}
	if o.Block < time.Second || o.Block%time.Second != 0 {
		errs = append(errs, fmt.Errorf("worker: Block is %v: it must be a whole number of seconds, at least 1s (zero means the default)", o.Block))
	}
	errs = append(errs, reg.Problems()...)
	return errors.Join(errs...)
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
// Call it before Run, once per queue. It refuses an empty queue name, a
// nil handler, a queue handled twice, a done queue that is the queue
// itself, and on Redis Cluster a queue whose keys are not all in its
// slot.
func (w *Worker) Handle(queueName string, h Handler, opts ...HandleOption) error {
	q := &queue{name: queueName, taken: keyspace.WorkerTakenList(queueName, w.o.ID), handler: h,
		fence: keyspace.WorkerFence(w.o.Prefix, queueName, w.o.ID)}
	for _, o := range opts {
		o(q)
	}
	switch {
	case q.name == "":
		return errors.New("worker: Handle: empty queue name")
	case q.handler == nil:
		return fmt.Errorf("worker: Handle(%q): nil handler", q.name)
	case slices.ContainsFunc(w.queues, func(o *queue) bool { return o.name == q.name }):
		return fmt.Errorf("worker: Handle(%q) called twice", q.name)
	case q.done == q.name:
		return fmt.Errorf("worker: queue %q: the done queue cannot be the queue itself", q.name)
	}
	if keyspace.OnCluster(w.rdb) {
		if err := w.sameSlot(q); err != nil {
			return err
		}
	}
	w.queues = append(w.queues, q)
	return nil
}

// ID is the worker id.
func (w *Worker) ID() string { return w.o.ID }

// Stats returns a snapshot of the worker's counters.
func (w *Worker) Stats() Stats {
	c := &w.stats
	return Stats{
		Taken: c.taken.Load(), Completed: c.completed.Load(), Retried: c.retried.Load(),
		DeadLettered: c.deadLettered.Load(), Fenced: c.fenced.Load(), HandedBack: c.handedBack.Load(),
		Replayed: c.replayed.Load(), Panics: c.panics.Load(),
	}
}

// TakenList is the worker's taken list of queueName.
func (w *Worker) TakenList(queueName string) string {
	return keyspace.WorkerTakenList(queueName, w.o.ID)
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
	want := keyspace.Slot(q.name)
	for _, k := range keys {
		if keyspace.Slot(k) != want {
			return fmt.Errorf("worker: queue %q on Redis Cluster: key %q is in slot %d, the queue in %d: "+
				"give the queue a hash tag ({tag}name), the same in its set and done queue, and a key prefix without braces "+
				"(see docs/redis.md)", q.name, k, keyspace.Slot(k), want)
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

// newTag is a delay schedule member tag, unique to this worker.
func (w *Worker) newTag(now time.Time) string {
	return fmt.Sprintf("%d-w%s-%d", now.UnixMilli(), w.o.ID, w.seq.Add(1))
}

// ErrIDInUse is Run's error (wrapped) when a live worker or replica holds
// the worker's id.
var ErrIDInUse = registry.ErrIDInUse
