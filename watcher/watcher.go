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
	"cmp"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
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
	commitScript = script.New(commitSrc)

	//go:embed take.lua
	takeSrc    string
	takeScript = script.New(takeSrc)

	//go:embed handback.lua
	handbackSrc    string
	handbackScript = script.New(handbackSrc)
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

// Options configure a Watcher beyond its configuration entry.
type Options struct {
	// Replica is this replica's id; required.
	Replica string
	// ListenerChannel is the configuration's listener_channel; "" publishes
	// nothing.
	ListenerChannel string
	// Dialect is the server's script dialect (script.Detect).
	Dialect script.Dialect
	// BlockTimeout is how long one BLMOVE waits for an event; it bounds how
	// long Run takes to notice its context is done. Default and minimum 1 s
	// (go-redis sends whole seconds).
	BlockTimeout time.Duration
	// DrainTimeout is how long in-flight events may take to finish once
	// Run's context is done; what is left then is handed back to the input
	// queue. Default 30 s.
	DrainTimeout time.Duration
	// Now is the clock of set scores and dead-letter times; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Fence, when not nil, is the replica's lease (package cluster): once it
	// is done the watcher stops at once, without draining (see Run). Nil
	// means no lease.
	Fence context.Context
	// Prefix is the configuration's key prefix of internal keys (fetch
	// attempts, delay schedule, trace contexts). Default
	// config.DefaultKeyPrefix.
	Prefix string
	// Retry schedules the events whose fetch failed.
	Retry RetrySettings
	// Permanent tells fetch errors that retrying cannot fix (a 404, a body
	// that is not JSON): the event goes to the dead-letter list at once.
	// Nil: every fetch error is retried.
	Permanent func(error) bool
	// TracerProvider traces events (see trace.go); nil traces nothing.
	TracerProvider trace.TracerProvider
	// TraceParent makes an event's stored trace context the parent of its
	// consumer span; by default it is a link (OpenTelemetry messaging
	// conventions).
	TraceParent bool
	// TraceContextTTL is how long the trace context stored with each traced
	// task (and with each traced event taken without one) lives: one key of
	// about 200 bytes of Redis memory each. Default 1 h.
	TraceContextTTL time.Duration
	// MeterProvider receives the watcher's metrics; nil counts nothing
	// beyond Stats.
	MeterProvider metric.MeterProvider
}

// RetrySettings schedule again, in Redis, an event whose fetch still failed
// after the fetch client's own retries: the event leaves the taken list for
// the delay schedule of its input queue, from where the leader promotes it
// back to the input queue when due. Zero fields take the defaults.
type RetrySettings struct {
	// Attempts is how many times an event's fetches are attempted in all;
	// the failure of the last attempt sends the event to the dead-letter
	// list. Default 8.
	Attempts int
	// Delay is the wait after the first failed attempt, doubling after
	// each further one. Default 5 s.
	Delay time.Duration
	// MaxDelay caps the wait. Default 10 min; a MaxDelay below Delay is
	// taken as Delay (package config refuses it).
	MaxDelay time.Duration
	// AttemptsTTL is how long an event's attempts are remembered after
	// its last failure. Default 24 h, and never less than twice MaxDelay
	// plus an hour. Identical events share their attempts (they are
	// counted by the event's text), as they share crash replay counts.
	AttemptsTTL time.Duration
}

// Defaults of RetrySettings.
const (
	DefaultRetryAttempts   = config.DefaultRescheduleAttempts
	DefaultRetryDelay      = config.DefaultRescheduleDelay
	DefaultRetryMaxDelay   = config.DefaultRescheduleMaxDelay
	DefaultAttemptsTTL     = 24 * time.Hour
	DefaultTraceContextTTL = time.Hour
)

// WithDefaults returns r with every zero field set to its default.
func (r RetrySettings) WithDefaults() RetrySettings {
	if r.Attempts <= 0 {
		r.Attempts = DefaultRetryAttempts
	}
	if r.Delay <= 0 {
		r.Delay = DefaultRetryDelay
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = DefaultRetryMaxDelay
	}
	r.MaxDelay = max(r.MaxDelay, r.Delay)
	if r.AttemptsTTL <= 0 {
		r.AttemptsTTL = DefaultAttemptsTTL
	}
	// The attempts must outlive the longest wait between two attempts, else
	// an event would never reach its last attempt.
	r.AttemptsTTL = max(r.AttemptsTTL, 2*r.MaxDelay+time.Hour)
	return r
}

// Stats are counters of a watcher since it started.
type Stats struct {
	Taken        atomic.Int64 // events taken from the input queue
	Committed    atomic.Int64 // events committed (their tasks pushed)
	TasksPushed  atomic.Int64 // tasks pushed to their queue
	TasksDeduped atomic.Int64 // tasks not pushed: already in their set
	NotOwned     atomic.Int64 // commits refused: event no longer in the taken list
	DeadLettered atomic.Int64 // events sent to the dead-letter list
	Retried      atomic.Int64 // events scheduled again after a failed fetch
	HandedBack   atomic.Int64 // events moved back to the input queue (start and stop)
}

// Watcher watches one input queue. Create it with New and start it with Run.
type Watcher struct {
	cfg    config.Watcher
	rules  *rules.Ruleset
	rdb    Redis
	fetch  Fetcher
	opts   Options
	log    *slog.Logger
	taken  string
	dead   string
	outage *backoff.Outage
	stats  Stats

	attempts string // fetch attempts of the input queue
	sched    string // delay schedule of the input queue
	runTag   string // makes this run's schedule members unique
	tracer   trace.Tracer
	traceTTL any // TraceContextTTL in ms, for commit.lua
	metrics  *watcherMetrics

	// commit.lua's arguments boxed once (see commitCalls)
	channelArg, takenQueueArg any
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

// New returns a watcher of cfg applying rs, reading and writing through rdb,
// fetching through f (which may be nil when no rule fetches).
func New(cfg config.Watcher, rs *rules.Ruleset, rdb Redis, f Fetcher, opts Options) *Watcher {
	if cfg.TakenQueue == "" {
		cfg.TakenQueue = cfg.InputQueue + "/taken"
	}
	cfg.Concurrency = orDefault(cfg.Concurrency, config.DefaultConcurrency)
	cfg.FetchConcurrency = orDefault(cfg.FetchConcurrency, config.DefaultFetchConcurrency)
	cfg.BatchSize = min(orDefault(cfg.BatchSize, config.DefaultBatchSize), cfg.Concurrency)
	opts.BlockTimeout = max(opts.BlockTimeout, time.Second)
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
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
	opts.Retry = opts.Retry.WithDefaults()
	if opts.TraceContextTTL <= 0 {
		opts.TraceContextTTL = DefaultTraceContextTTL
	}
	log := opts.Logger.With("queue", cfg.InputQueue)
	w := &Watcher{
		cfg:       cfg,
		rules:     rs,
		rdb:       rdb,
		fetch:     f,
		opts:      opts,
		log:       log,
		taken:     keyspace.TakenList(cfg.TakenQueue, opts.Replica),
		dead:      keyspace.DeadList(cfg.InputQueue),
		outage:    backoff.NewOutage(log, "redis"),
		attempts:  keyspace.FetchAttempts(opts.Prefix, cfg.InputQueue),
		sched:     keyspace.DelaySchedule(opts.Prefix, cfg.InputQueue),
		runTag:    randomTag(),
		idleAfter: idleAfter,
		traceTTL:  strconv.FormatInt(max(opts.TraceContextTTL.Milliseconds(), 1), 10),

		channelArg:    opts.ListenerChannel,
		takenQueueArg: cfg.TakenQueue,
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

func randomTag() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// TakenList is this replica's taken list.
func (w *Watcher) TakenList() string { return w.taken }

// Stats returns the watcher's counters.
func (w *Watcher) Stats() *Stats { return &w.stats }

// item is one taken event on its way to its commit.
type item struct {
	event string
	tasks []rules.Task
	// outcome is what its commit does with it, reason why when it is not
	// outcomeCommit.
	outcome outcome
	reason  string
	// fetched: it matched a rule with fetches, so it may have fetch
	// attempts in Redis for its commit to forget.
	fetched bool
	// attempts is how many times its fetch was attempted, when that is why
	// it is dead-lettered.
	attempts int
	// trace is the event's trace; nil when not traced.
	trace *eventTrace
	// scriptErrors counts the commit script's own errors on this event.
	scriptErrors int
	// outage is set by a commit that failed on this event because Redis
	// could not answer (commit.lua's code 10 with an outage error).
	outage error
	// seq is the order in which this replica took the event.
	seq uint64
}

// outcome is what the commit of an item does with its event.
type outcome uint8

const (
	// outcomeCommit pushes its tasks (none when no rule matched).
	outcomeCommit outcome = iota
	// outcomeRetry schedules it again: its fetch failed (the reason) after
	// the fetch client's retries; past the last attempt it is dead-lettered.
	outcomeRetry
	// outcomeRetryBusy schedules it again without counting an attempt: its
	// fetch's host had no free slot (the reason).
	outcomeRetryBusy
	// outcomeDead sends it to the dead-letter list with the reason.
	outcomeDead
	// outcomeHandBack hands it back to the input queue: it could not be
	// finished before the drain timeout.
	outcomeHandBack
)

func (o outcome) String() string {
	switch o {
	case outcomeCommit:
		return "commit"
	case outcomeRetry:
		return "retry"
	case outcomeRetryBusy:
		return "retry (host busy)"
	case outcomeDead:
		return "dead-letter"
	case outcomeHandBack:
		return "hand back"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// deadLetter makes it go to the dead-letter list for reason.
func (it *item) deadLetter(reason string) {
	it.outcome, it.reason = outcomeDead, reason
}

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

// takeLoop takes events while ctx is not done and dispatches them.
func (w *Watcher) takeLoop(ctx, work context.Context, slots chan struct{}, ready chan<- []*item, fetches *sync.WaitGroup) (leftover []*item) {
	fetchSlots := newHostSlots(w.cfg.FetchConcurrency, w.cfg.Concurrency, hostWait)
	// A BLMOVE under way when ctx ends may still take one event, up to the
	// block timeout later; it is handled like any other.
	defer w.log.Info("stopped taking")
	attempt := 0
	// stranded is set by a failed take: the server may have moved events
	// into the taken list and lost the reply.
	stranded := false
	for ctx.Err() == nil {
		if stranded {
			if err := w.replayStranded(ctx, slots); err != nil {
				return
			}
			stranded = false
		}
		// Hold at least one slot, and as many more as are free, up to a batch.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < w.cfg.BatchSize {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		events, idle, err := w.take(ctx, n)
		for range n - len(events) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.outage.Fail(err)
			stranded = true
			attempt++
			if !backoff.Sleep(ctx, backoff.Delay(attempt)) {
				return
			}
			continue
		}
		attempt = 0
		w.outage.OK()
		var infos []traceInfo
		if w.tracer != nil {
			infos = w.readTraceInfo(ctx, events)
		}
		var traces []*eventTrace
		if infos != nil {
			traces = w.startTraces(ctx, work, events, infos)
		}
		// The events needing no fetch go to the committer together: one
		// hand-off, and a commit of them all rather than of the first few.
		// Their items and tasks are allocated for the whole take.
		b := &takeBatch{
			items: make([]item, len(events)),
			now:   make([]*item, 0, len(events)),
			tasks: make([]rules.Task, 0, len(events)),
		}
		for i, ev := range events {
			var t *eventTrace
			if traces != nil {
				t = traces[i]
			}
			w.dispatch(work, b, i, ev, t, ready, fetchSlots, fetches)
		}
		if len(b.now) == 0 {
			continue
		}
		if idle {
			if left, ok := w.commitInline(work, b.now, slots); ok {
				leftover = append(leftover, left...)
				continue
			}
		}
		w.queued.Add(int64(len(b.now)))
		ready <- b.now
	}
	return leftover
}

// commitInline commits items at once, from the taking goroutine, when the
// committer has nothing queued nor under way; it reports whether it did,
// and returns what it could not commit. It serves an idle replica: the event
// a BLMOVE waited for (idleAfter or more) is committed without waking the
// committing goroutine (on a machine with idle CPUs, waking a thread is most
// of an idle event's latency) and before the next take is sent. Under load
// takes do not wait, and the committer commits while the next events are
// taken.
func (w *Watcher) commitInline(work context.Context, items []*item, slots chan struct{}) (left []*item, ok bool) {
	if w.queued.Load() != 0 || !w.commitMu.TryLock() {
		return nil, false
	}
	defer w.commitMu.Unlock()
	// Under the lock, no commit is under way; nothing queued means no event
	// taken earlier waits to be committed, so the order of commits is kept.
	if w.queued.Load() != 0 {
		return nil, false
	}
	left = w.commitBatch(work, items)
	for range items {
		<-slots
	}
	w.inlineCommits.Add(1)
	return left, true
}

// replayStranded moves back to the input queue the events a failed take may
// have left in the taken list without this replica knowing them. It first
// holds every slot, so that nothing is in flight: whatever the taken list
// holds then is stranded.
func (w *Watcher) replayStranded(ctx context.Context, slots chan struct{}) error {
	held := 0
	defer func() {
		for range held {
			<-slots
		}
	}()
	for held < cap(slots) {
		select {
		case slots <- struct{}{}:
			held++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return w.replayTaken(ctx)
}

// idleAfter is how long a take must have waited for its event for the
// replica to count as idle (see commitInline): at more than about a
// thousand events a second, events keep going to the committer.
const idleAfter = time.Millisecond

// take takes up to n events: without blocking when the queue has some, else
// blocking with BLMOVE for one, up to the block timeout. idle is true when
// it waited idleAfter or more for that one.
func (w *Watcher) take(ctx context.Context, n int) (events []string, idle bool, err error) {
	events, err = w.takeNow(ctx, n)
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, err
	}
	if len(events) > 0 {
		return events, false, nil
	}
	start := time.Now()
	ev, err := w.rdb.BLMove(ctx, w.cfg.InputQueue, w.taken, "RIGHT", "LEFT", w.opts.BlockTimeout).Result()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return []string{ev}, time.Since(start) >= w.idleAfter, nil
}

// takeNow runs take.lua: up to n events, without blocking. The command is
// made here rather than by go-redis' Script so that the reply is read
// straight into strings.
func (w *Watcher) takeNow(ctx context.Context, n int) ([]string, error) {
	for loaded := false; ; loaded = true {
		cmd := redis.NewStringSliceCmd(ctx, "evalsha", takeScript.Hash(w.opts.Dialect), 2, &w.cfg.InputQueue, &w.taken, n)
		_ = w.rdb.Process(ctx, cmd)
		events, err := cmd.Result()
		if loaded || !script.IsNoScript(err) {
			return events, err
		}
		if err := takeScript.Load(ctx, w.opts.Dialect, w.rdb); err != nil {
			return nil, err
		}
	}
}

// takeBatch holds what the events of one take share.
type takeBatch struct {
	items   []item        // one per event taken
	now     []*item       // those ready to commit at once (no fetch)
	tasks   []rules.Task  // their tasks, each item's a part
	matches []rules.Match // scratch: the rules matching the current event
}

// dispatch applies the rules to ev, the i-th event of b. When no matching
// rule fetches, the event joins b.now, ready to commit; else a goroutine
// sends it to the committer once fetched.
func (w *Watcher) dispatch(work context.Context, b *takeBatch, i int, ev string, t *eventTrace, ready chan<- []*item, fetchSlots *hostSlots, fetches *sync.WaitGroup) {
	seq := uint64(w.stats.Taken.Add(1))
	b.matches = w.rules.AppendMatches(b.matches[:0], ev)
	matches := b.matches
	w.metrics.matched(matches)
	if w.log.Enabled(work, slog.LevelInfo) {
		w.log.Info("<- event", "event", short(ev), "matching_rules", len(matches))
	}
	needsFetch := false
	for j := range matches {
		needsFetch = needsFetch || matches[j].Rule().HasFetch()
	}
	if !needsFetch {
		it := &b.items[i]
		it.event, it.seq, it.trace = ev, seq, t
		start := len(b.tasks)
		for j := range matches {
			n := len(b.tasks)
			_, span := t.rule(matches[j].Rule())
			b.tasks = matches[j].Make(nil, b.tasks)
			endRule(span, len(b.tasks)-n, nil)
		}
		it.tasks = b.tasks[start:len(b.tasks):len(b.tasks)]
		b.now = append(b.now, it)
		return
	}
	matches = slices.Clone(matches) // b.matches is the next event's
	fetches.Add(1)
	go func() {
		defer fetches.Done()
		it := w.fetchAndMake(work, ev, t, matches, fetchSlots)
		it.seq, it.trace = seq, t
		w.queued.Add(1)
		ready <- []*item{it}
	}()
}

// fetchAndMake runs the fetches of ev's matching rules and makes its tasks.
// A failed fetch fails the whole event, so that no task of it is pushed
// twice when it is attempted again: a transient failure schedules it again,
// a permanent one (Options.Permanent) sends it to the dead-letter list.
func (w *Watcher) fetchAndMake(work context.Context, ev string, t *eventTrace, matches []rules.Match, fetchSlots *hostSlots) *item {
	it := &item{event: ev, fetched: true}
	for i := range matches {
		m := &matches[i]
		rctx, span := t.rule(m.Rule())
		if rctx == nil {
			rctx = work
		}
		n := len(it.tasks)
		reqs, err := m.FetchRequests()
		if err != nil {
			endRule(span, 0, err)
			w.log.Warn("fetch failed", "event", short(ev), "rule", m.Rule().Name(), "err", err)
			return &item{event: ev, fetched: true, outcome: outcomeDead, reason: "rule " + strconv.Quote(m.Rule().Name()) + ": " + err.Error()}
		}
		if len(reqs) == 0 {
			it.tasks = m.Make(nil, it.tasks)
			endRule(span, len(it.tasks)-n, nil)
			continue
		}
		if w.fetch == nil {
			err := errors.New("no fetcher configured")
			endRule(span, 0, err)
			return &item{event: ev, fetched: true, outcome: outcomeDead, reason: "rule " + strconv.Quote(m.Rule().Name()) + ": " + err.Error()}
		}
		results := make([][]map[string]string, len(reqs))
		for j, r := range reqs {
			release, err := fetchSlots.acquire(work, r.URL)
			var busy *errHostBusy
			switch {
			case errors.As(err, &busy):
				endRule(span, 0, err)
				return &item{event: ev, fetched: true, outcome: outcomeRetryBusy, reason: err.Error()}
			case err != nil:
				endRule(span, 0, err)
				return &item{event: ev, outcome: outcomeHandBack}
			}
			res, err := w.fetch.Fetch(rctx, r.URL, r.Settings)
			release()
			if err != nil {
				endRule(span, 0, err)
				if work.Err() != nil {
					return &item{event: ev, outcome: outcomeHandBack}
				}
				why := "rule " + strconv.Quote(m.Rule().Name()) + ": " + err.Error()
				if w.opts.Permanent != nil && w.opts.Permanent(err) {
					w.log.Warn("fetch failed for good", "event", short(ev), "rule", m.Rule().Name(), "err", err)
					return &item{event: ev, fetched: true, outcome: outcomeDead, reason: why}
				}
				return &item{event: ev, fetched: true, outcome: outcomeRetry, reason: why}
			}
			results[j] = res
		}
		it.tasks = m.Make(results, it.tasks)
		endRule(span, len(it.tasks)-n, nil)
	}
	return it
}

// startTraces starts the consumer spans of events, and stores the trace
// contexts of those taken without one, so that a replay or a retry of the
// event continues its trace. It stores them before the events are
// dispatched: a commit that deletes one must come after it. It never
// overwrites one.
func (w *Watcher) startTraces(ctx, work context.Context, events []string, infos []traceInfo) []*eventTrace {
	traces := make([]*eventTrace, len(events))
	var pipe redis.Pipeliner
	for i, ev := range events {
		t, store := w.startTrace(work, ev, infos[i])
		traces[i] = t
		if !store {
			continue
		}
		if pipe == nil {
			pipe = w.rdb.Pipeline()
		}
		pipe.SetNX(ctx, keyspace.TraceContext(w.opts.Prefix, w.cfg.InputQueue, ev), traceparent(t.ctx), w.opts.TraceContextTTL)
	}
	if pipe != nil {
		if _, err := pipe.Exec(ctx); err != nil && ctx.Err() == nil {
			w.log.Debug("storing trace contexts", "err", err)
		}
	}
	return traces
}

// commitLoop commits ready events in batches until ready is closed: all
// the events ready, up to the concurrency, in one round trip. It returns
// the events it could not commit before work was done.
func (w *Watcher) commitLoop(work context.Context, ready <-chan []*item, slots chan struct{}) (leftover []*item) {
	batch := make([]*item, 0, w.cfg.Concurrency)
	for items := range ready {
		batch = append(batch[:0], items...)
	fill:
		for len(batch) < w.cfg.Concurrency {
			select {
			case items, ok := <-ready:
				if !ok {
					break fill
				}
				batch = append(batch, items...)
			default:
				break fill
			}
		}
		w.commitMu.Lock()
		leftover = append(leftover, w.commitBatch(work, batch)...)
		for range batch {
			<-slots
		}
		w.queued.Add(-int64(len(batch)))
		w.commitMu.Unlock()
	}
	return leftover
}

// replayTaken moves every event of this replica's taken list back to the
// input queue, as resc does on start: they were taken by an earlier run of
// this replica that did not finish them. It retries until ctx is done.
func (w *Watcher) replayTaken(ctx context.Context) error {
	const chunk = 1000
	total, attempt := int64(0), 0
	for {
		n, err := handbackScript.Run(ctx, w.opts.Dialect, w.rdb, []string{w.taken, w.cfg.InputQueue}, "all", chunk).Int64()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.outage.Fail(err)
			attempt++
			if !backoff.Sleep(ctx, backoff.Delay(attempt)) {
				return ctx.Err()
			}
			continue
		}
		w.outage.OK()
		attempt = 0
		total += n
		if n < chunk {
			break
		}
	}
	if total > 0 {
		w.stats.HandedBack.Add(total)
		w.log.Warn("replayed events left in this replica's taken list (by an earlier run, or by a take whose reply was lost)", "taken", w.taken, "events", total)
	}
	return nil
}

// handBack moves events this replica could not finish back to the input
// queue, oldest first, fenced like a commit: an event no longer in the taken
// list is not moved. ctx is done by now: it runs on a fresh context of ten
// seconds.
func (w *Watcher) handBack(ctx context.Context, items []*item) {
	if len(items) == 0 {
		return
	}
	for _, it := range items {
		it.trace.end("handed back", "unfinished at shutdown: back in the input queue")
	}
	// Oldest taken first, whatever order their work ended in.
	slices.SortFunc(items, func(a, b *item) int { return cmp.Compare(a.seq, b.seq) })
	events := make([]string, len(items))
	for i, it := range items {
		events[i] = it.event
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	const chunk = 1000
	for start := 0; start < len(events); start += chunk {
		part := events[start:min(start+chunk, len(events))]
		args := make([]any, 0, len(part)+1)
		args = append(args, "these")
		for _, ev := range part {
			args = append(args, ev)
		}
		n, err := handbackScript.Run(ctx, w.opts.Dialect, w.rdb, []string{w.taken, w.cfg.InputQueue}, args...).Int64()
		if err != nil {
			w.log.Error("cannot hand back unfinished events: they stay in the taken list and are replayed when this replica id starts again",
				"taken", w.taken, "events", len(events)-start, "err", err)
			return
		}
		w.stats.HandedBack.Add(n)
		w.log.Warn("handed back unfinished events to the input queue", "events", n)
	}
}

// short shortens an event for a log line: events can be megabytes.
func short(ev string) string {
	const limit = 200
	if len(ev) <= limit {
		return ev
	}
	return ev[:limit] + "…(" + strconv.Itoa(len(ev)) + " bytes)"
}
