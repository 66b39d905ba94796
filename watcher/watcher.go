// Package watcher takes events from an input queue, applies the rules of
// their watcher and commits the tasks they make to Redis.
//
// Taking: each replica moves events atomically from the input queue into its
// own taken list "<taken_queue>/<replica-id>", up to batch_size in one round
// trip (take.lua), blocking with BLMOVE when the queue is empty.
//
// Applying: the rules are pure and cheap; an event whose matching rules need
// no fetch is ready at once, one that needs a fetch waits for a fetch slot of
// its host on a goroutine of its own, so a slow fetch never delays events
// that need none or need another host (see hosts.go).
//
// Committing: ready events are committed in pipelined batches, each event by
// one atomic script (commit.lua) that validates every destination, proves the
// event is still in this replica's taken list, and only then pushes its tasks.
// An event replayed elsewhere meanwhile (a replica presumed dead) is
// therefore never committed twice: the exactly-once guarantee rests on that
// fence, not on timing.
//
// Guarantees: an event leaves the taken list only through its commit, the
// dead-letter list, the delay schedule (its fetch failed: it is attempted
// again later) or a hand-back to the input queue; a Redis outage is waited
// out with backoff and nothing taken is lost. Non-guarantees: events
// are committed in the order their work finishes, which is the order taken
// for events without fetch; a fetch may run again after a crash.
package watcher

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/rules"
)

var (
	//go:embed commit.lua
	commitSrc    string
	commitScript = script.New(commitSrc, script.TypeCheck, script.ReplayStamp, script.Delay)

	//go:embed take.lua
	takeSrc    string
	takeScript = script.New(takeSrc, script.TypeCheck, script.ReplayStamp, script.Move)
)

// Fetcher gets the results of a fetch rule's URL: one map of variables per
// JSON object returned (keys without the rule's namespace). s are the
// settings of the fetcher (rules.FetchRequest.Settings; nil for the
// Fetcher's own). An error that is not the context's schedules the event
// again (Options.Retry) unless Options.Permanent says retrying cannot help:
// then it goes to the dead-letter list at once.
type Fetcher interface {
	Fetch(ctx context.Context, url string, s *config.FetchSettings) ([]map[string]string, error)
}

// Redis is what the watcher needs of a go-redis client.
type Redis interface {
	redis.Scripter
	BLMove(ctx context.Context, source, destination, srcpos, destpos string, timeout time.Duration) *redis.StringCmd
	Pipeline() redis.Pipeliner
	Process(ctx context.Context, cmd redis.Cmder) error
}

// Watcher watches one input queue. Create it with New and start it with Run.
type Watcher struct {
	// What it was made of (New).
	cfg   config.Watcher
	rules *rules.Ruleset
	rdb   Redis
	fetch Fetcher
	opts  Options

	watcherKeys
	observers
	commitArgs
	commitState
	asideTags
	// stats count what it did (Counts reads them).
	stats liveCounts
}

// watcherKeys are the Redis keys of a watcher beside its input queue.
type watcherKeys struct {
	taken     string // this replica's taken list
	dead      string // the dead-letter list
	attempts  string // fetch attempts of the input queue
	sched     string // delay schedule of the input queue
	oversized string // the events set aside for their size
	stream    string // the listener stream; "" for none
}

// observers report what a watcher does: its log, its outage log, its
// tracer (nil: not traced) and its metrics (nil: none).
type observers struct {
	log     *slog.Logger
	outage  *backoff.Outage
	tracer  trace.Tracer
	metrics *watcherMetrics
}

// commitArgs are commit.lua's arguments that are the same for every call,
// boxed once (see commitCalls).
type commitArgs struct {
	channelArg, takenQueueArg any
	// streamLenArg is the listener stream's MAXLEN ("0" with no stream)
	streamLenArg any
	traceTTL     any // TraceContextTTL in ms
}

// commitState is what the committing goroutines share.
type commitState struct {
	// calls are the commit.lua calls of the last commit round, reused
	calls []commitCall
	// commitMu is held by whoever commits (commitBatch): the committing
	// goroutine, or the taking one committing an idle event (commitInline).
	commitMu sync.Mutex
	// queued counts the events handed to the committer and not yet
	// committed.
	queued atomic.Int64
	// idleAfter is the constant, but for tests; inlineCommits counts the
	// commits of commitInline, for tests.
	idleAfter     time.Duration
	inlineCommits atomic.Int64
}

// asideTags make the names this run gives unique: the fields of events
// set aside (numbered by asides, after runTag) and the delay schedule's
// members.
type asideTags struct {
	runTag string
	asides atomic.Uint64
}

// New returns a watcher of cfg applying rs, reading and writing through rdb,
// fetching through f (which may be nil when no rule fetches).
func New(cfg config.Watcher, rs *rules.Ruleset, rdb Redis, f Fetcher, opts Options) *Watcher {
	cfg, opts = withDefaults(cfg, opts)
	log := opts.Logger.With("queue", cfg.InputQueue)
	w := &Watcher{
		cfg: cfg, rules: rs, rdb: rdb, fetch: f, opts: opts,
		watcherKeys: watcherKeys{
			taken:     keyspace.TakenList(cfg.TakenQueue, opts.Replica),
			dead:      keyspace.DeadList(cfg.InputQueue),
			attempts:  keyspace.FetchAttempts(opts.Prefix, cfg.InputQueue),
			sched:     keyspace.DelaySchedule(opts.Prefix, cfg.InputQueue),
			oversized: keyspace.Oversized(opts.Prefix, cfg.InputQueue),
			stream:    opts.ListenerStream,
		},
		observers: observers{log: log, outage: backoff.NewOutage(log, "redis")},
		commitArgs: commitArgs{
			channelArg:    opts.ListenerChannel,
			takenQueueArg: cfg.TakenQueue,
			streamLenArg:  "0",
			traceTTL:      strconv.FormatInt(max(opts.TraceContextTTL.Milliseconds(), 1), 10),
		},
		commitState: commitState{idleAfter: idleAfter},
		asideTags:   asideTags{runTag: randomTag()},
	}
	if opts.ListenerStream != "" {
		w.streamLenArg = strconv.FormatInt(opts.ListenerStreamMaxLen, 10)
	}
	if opts.TracerProvider != nil {
		w.tracer = opts.TracerProvider.Tracer(tracerName)
	}
	if opts.MeterProvider != nil {
		commit, err := opts.MeterProvider.Meter(meterName).Float64Histogram("resc.commit.duration",
			metric.WithUnit("s"), metric.WithDescription("Duration of one commit round trip (a pipeline of commit scripts)."),
			metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1))
		if err != nil {
			log.Warn("metrics: commit histogram", "err", err)
		}
		w.metrics = newWatcherMetrics(rs, cfg.InputQueue, commit)
	}
	return w
}

// withDefaults returns cfg and opts with every zero field that has a
// default set to it (see Options).
func withDefaults(cfg config.Watcher, opts Options) (config.Watcher, Options) {
	if cfg.TakenQueue == "" {
		cfg.TakenQueue = cfg.InputQueue + "/taken"
	}
	cfg.Concurrency = orDefault(cfg.Concurrency, config.DefaultConcurrency)
	cfg.FetchConcurrency = orDefault(cfg.FetchConcurrency, config.DefaultFetchConcurrency)
	cfg.BatchSize = min(orDefault(cfg.BatchSize, config.DefaultBatchSize), cfg.Concurrency)
	opts.BlockTimeout = max(opts.BlockTimeout, time.Second)
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Prefix == "" {
		opts.Prefix = config.DefaultKeyPrefix
	}
	if opts.MaxEventBytes <= 0 {
		opts.MaxEventBytes = config.DefaultMaxEventBytes
	}
	if opts.ListenerStreamMaxLen <= 0 {
		opts.ListenerStreamMaxLen = config.DefaultListenerStreamMaxLen
	}
	opts.Retry = opts.Retry.WithDefaults()
	if opts.TraceContextTTL <= 0 {
		opts.TraceContextTTL = DefaultTraceContextTTL
	}
	return cfg, opts
}

func randomTag() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// TakenList is this replica's taken list.
func (w *Watcher) TakenList() string { return w.taken }

// ErrFenced is returned by Run when Options.Fence ended it.
var ErrFenced = errors.New("watcher: fenced: this replica's lease was lost")

// Run replays this replica's taken list, then takes and handles events
// until ctx is done. Then it stops taking, lets in-flight events finish for
// up to the drain timeout, hands back to the input queue what is left, and
// returns nil. It returns an error only when ctx is done before the start
// replay could run (the taken list is left as it is), or ErrFenced.
//
// When Options.Fence is done (the replica lost its lease: others may soon
// consider it dead and replay its taken list), Run stops taking and cancels
// in-flight work at once, hands nothing back (the taken list is left to
// whoever replays it) and returns ErrFenced. Commits already sent may still
// land; the fence of commit.lua keeps them exactly-once.
func (w *Watcher) Run(ctx context.Context) error {
	fence := w.opts.Fence
	if fence == nil {
		fence = context.WithoutCancel(ctx) // never done
	}
	if w.opts.MeterProvider != nil {
		unregister, err := w.registerMetrics(w.opts.MeterProvider)
		if err != nil {
			w.log.Warn("metrics: cannot register the watcher's", "err", err)
		} else {
			defer unregister()
		}
	}
	takeCtx, cancelTake := context.WithCancel(ctx)
	defer cancelTake()
	defer context.AfterFunc(fence, cancelTake)()
	if err := w.replayTaken(takeCtx); err != nil {
		if fence.Err() != nil {
			return ErrFenced
		}
		return err
	}
	w.log.Info("watching", "taken", w.taken, "rules", len(w.rules.Rules()))

	// work outlives ctx by the drain timeout: in-flight events finish with
	// it. A lost lease ends it at once.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	defer context.AfterFunc(ctx, func() {
		w.log.Info("stopping: no more taking, draining in-flight events", "drain_timeout", w.opts.DrainTimeout)
		time.AfterFunc(w.opts.DrainTimeout, cancelWork)
	})()
	defer context.AfterFunc(fence, func() {
		w.log.Warn("lease lost: stopping at once; in-flight events stay in the taken list for the leader to replay", "taken", w.taken)
		cancelWork()
	})()

	// slots bounds the events held at once: taking one needs a slot, its
	// commit frees it. ready carries ready events in groups (all those of a
	// take that need no fetch, or one fetched event); it never blocks: it
	// has room for every slot.
	slots := make(chan struct{}, w.cfg.Concurrency)
	ready := make(chan []*item, w.cfg.Concurrency)

	var g errgroup.Group
	var inlineLeft []*item // what commits made by the taking goroutine left
	g.Go(func() error {
		defer close(ready)
		var fetches sync.WaitGroup
		inlineLeft = w.takeLoop(takeCtx, work, slots, ready, &fetches)
		fetches.Wait()
		return nil
	})
	var leftover []*item
	g.Go(func() error {
		leftover = w.commitLoop(work, ready, slots)
		return nil
	})
	_ = g.Wait()
	leftover = append(leftover, inlineLeft...)

	if fence.Err() != nil {
		for _, it := range leftover {
			it.trace.end("left in the taken list", "lease lost: the leader replays it")
		}
		return ErrFenced
	}
	// Shutdown, second phase: whatever could not finish goes back to the
	// input queue, with a fresh context since ctx and work are done.
	w.handBack(ctx, leftover)
	return nil
}
