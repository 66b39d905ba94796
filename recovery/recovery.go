// Package recovery runs the leader-only loops of a resc-go cluster: it
// replays the taken lists of dead replicas (orphan lists) back into their
// input queues, counts how often each event was replayed after a crash,
// delays the replays of an event that keeps crashing replicas, and sends it
// to the dead-letter list past a maximum.
//
// Every ScanInterval, the leader looks for the taken lists
// "<taken_queue>/<replica-id>" of each watcher (SCAN, glob characters of
// the queue name escaped), asks Liveness which replicas are alive, and
// replays the lists of the others, including replicas that never
// registered or whose registration expired. It also promotes the delayed
// events that are due (Promote, which any replica may run).
//
// Guarantees:
//   - Each entry of an orphan list moves exactly once: it leaves the list
//     inside an atomic script (replay.lua) that puts it in exactly one of the
//     input queue, the delay schedule or the dead-letter list. Two leaders
//     that briefly coexist may both run the script on the same list; the
//     entries are then shared between them, never duplicated nor lost.
//   - A replica that was presumed dead but comes back (a zombie) commits
//     nothing of what was replayed: its fenced commit (package watcher)
//     finds the event gone from its taken list.
//   - Order is kept within an orphan list: its entries reach the consuming
//     end of the input queue oldest rightmost, taken first. Delayed events
//     come back in due order.
//   - Nothing is dropped: an event past MaxReplays goes to
//     "<input_queue>/dead" as a JSON entry (see DeadEntry's format below).
//
// Non-guarantees:
//   - Replay counts are per occurrence: replay.lua stamps the count on
//     the entry it pushes back ("\0resc:replays=<n>\0<event>",
//     keyspace.StampReplays), and the entry carries it through the input
//     queue, a taken list, the delay schedule and hand-backs. The same
//     event text pushed again by a producer starts at 0. A crash counts
//     once for each occurrence in the orphan list. An occurrence is no
//     longer counted once it is committed, dead-lettered or requeued from
//     the dead-letter list (which pushes the bare event).
//   - A producer event that starts with a well-formed stamp is read as a
//     stamped one: events must not start with "\0resc:replays=".
//   - Due times are written with the leader's clock and compared with the
//     promoting replica's clock: clock skew between replicas shifts the
//     replay delay by as much.
//   - A replica id must not contain '/': a key "<taken_queue>/a/b" is not
//     taken for a taken list (it may belong to another watcher whose queue
//     name starts with "<taken_queue>/").
//   - On Redis Cluster, the keys of one script (taken list, input queue,
//     dead list, and the delay schedule under the prefix) must
//     share a hash slot (hash tags).
//
// Dead-letter entries are JSON objects with the fields of package
// watcher's DeadEntry (event, event_base64 when the event is not valid
// UTF-8, queue, reason, replica: the dead owner, time in RFC 3339 UTC) plus
// count, the number of replays made. The JSON is built inside the script
// (cjson, with its own UTF-8 check and base64), so that the entry moves in
// the same atomic step as every other.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/consumer"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/internal/takenlist"
)

// Defaults of Settings.
const (
	DefaultScanInterval   = config.DefaultScanInterval
	DefaultMaxReplays     = config.DefaultMaxReplays
	DefaultReplayDelay    = config.DefaultReplayDelay
	DefaultMaxReplayDelay = consumer.DefaultMaxReplayDelay
	DefaultBatchSize      = consumer.DefaultBatchSize
)

// Liveness tells live replicas from dead ones. Package cluster implements
// it: a replica is alive while its heartbeat key exists.
type Liveness interface {
	// Alive reports, for each id, whether that replica is alive; an id that
	// never registered is not.
	Alive(ctx context.Context, replicaIDs []string) ([]bool, error)
}

// Watched is one watcher of the configuration.
type Watched struct {
	InputQueue string
	// TakenQueue is the taken_queue; "" means "<input_queue>/taken".
	TakenQueue string
	// Tasks marks a task queue of the workers of package worker (found in
	// keyspace.WorkerQueues): its taken lists are the workers'
	// "<queue>/taken/<worker-id>", and its poison entries are tasks.
	Tasks bool
}

// Settings tune a Recoverer. Each field's comment says what its zero
// means: the default for all but MaxReplays, whose zero means what
// max_replays 0 means in the configuration (no replay). DefaultSettings
// are the configuration's defaults.
type Settings struct {
	// Prefix of the internal keys (replay counts, delay schedules).
	// Zero: config.DefaultKeyPrefix ("resc:").
	Prefix string
	// ScanInterval is how often Run looks for orphan lists and promotes due
	// events. Zero or negative: DefaultScanInterval (1 s).
	ScanInterval time.Duration
	// MaxReplays is how many times an event found in the taken list of a
	// dead replica is replayed; found once more, it goes to the dead-letter
	// list. Zero: no replay, every orphaned event goes to the dead-letter
	// list at once (the configuration's max_replays 0); negative is taken
	// as zero. The configuration's default is DefaultMaxReplays (3), which
	// DefaultSettings sets.
	MaxReplays int
	// ReplayDelay is the delay before the 2nd replay of an event (the 1st
	// is immediate), doubling at each further replay. Zero or negative:
	// DefaultReplayDelay (1 s).
	ReplayDelay time.Duration
	// MaxReplayDelay caps the replay delay. Zero or negative:
	// DefaultMaxReplayDelay (30 s).
	MaxReplayDelay time.Duration
	// BatchSize is the most entries one script call moves (orphan replay,
	// promotion). Zero or negative: DefaultBatchSize (1000).
	BatchSize int
	// Now is the clock of due times and dead-letter times. Nil: time.Now.
	Now func() time.Time
}

// DefaultSettings are the settings of a configuration without a cluster
// object: every field its default, MaxReplays DefaultMaxReplays.
func DefaultSettings() Settings {
	return Settings{MaxReplays: DefaultMaxReplays}.WithDefaults()
}

// WithDefaults returns s with every zero field that has a default set to
// it, and a negative MaxReplays set to zero.
func (s Settings) WithDefaults() Settings {
	if s.Prefix == "" {
		s.Prefix = config.DefaultKeyPrefix
	}
	if s.ScanInterval <= 0 {
		s.ScanInterval = DefaultScanInterval
	}
	s.MaxReplays = max(s.MaxReplays, 0)
	if s.ReplayDelay <= 0 {
		s.ReplayDelay = DefaultReplayDelay
	}
	if s.MaxReplayDelay <= 0 {
		s.MaxReplayDelay = DefaultMaxReplayDelay
	}
	if s.BatchSize <= 0 {
		s.BatchSize = DefaultBatchSize
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	return s
}

// Redis is what a Recoverer needs of a go-redis client.
type Redis interface {
	redis.Scripter
	ScanType(ctx context.Context, cursor uint64, match string, count int64, keyType string) *redis.ScanCmd
	HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd
}

// Recoverer replays orphan taken lists and promotes delayed replays. Create
// it with New; Run it while leading. Safe for concurrent use.
type Recoverer struct {
	rdb     Redis
	dialect script.Dialect
	watched []Watched
	live    Liveness
	s       Settings
	log     *slog.Logger
	outage  *backoff.Outage
	finder  *takenlist.Finder
	badKeys badKeys
	stats   Stats

	mu sync.Mutex
	// tasks are the worker queues found by the latest scan (Promote moves
	// their due retries too).
	tasks []Watched
}

// Stats count what a Recoverer did since it was created.
type Stats struct {
	Replayed     atomic.Int64 // events of dead replicas back in their input queue at once
	Delayed      atomic.Int64 // events of dead replicas put in the delay schedule
	DeadLettered atomic.Int64 // events replayed too often, sent to the dead-letter list
	Promoted     atomic.Int64 // due events moved from a delay schedule to their input queue
}

// Stats returns the Recoverer's counters.
func (r *Recoverer) Stats() *Stats { return &r.stats }

// Options configure a Recoverer beside its Redis client, its watchers and
// the liveness of the replicas.
type Options struct {
	// Settings tune it (see Settings for what each zero means).
	// Settings.Prefix is the key prefix.
	Settings Settings
	// Dialect is the server's script dialect (script.Detect).
	Dialect script.Dialect
	// Logger; nil means slog.Default(). The Recoverer adds
	// component=recovery.
	Logger *slog.Logger
	// MeterProvider receives the counters resc.recovery.replayed,
	// .delayed, .dead_lettered and .promoted (what this replica did as
	// leader, docs/telemetry.md); nil records none.
	MeterProvider metric.MeterProvider
}

// New returns a Recoverer of the watched queues.
func New(rdb Redis, watched []Watched, live Liveness, o Options) *Recoverer {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	s := o.Settings.WithDefaults()
	ws := make([]Watched, len(watched))
	queues := make([]takenlist.Queues, len(watched))
	for i, w := range watched {
		w.TakenQueue = takenlist.TakenQueue(takenlist.Queues{InputQueue: w.InputQueue, TakenQueue: w.TakenQueue})
		ws[i] = w
		queues[i] = takenlist.Queues{InputQueue: w.InputQueue, TakenQueue: w.TakenQueue}
	}
	log = log.With("component", "recovery")
	r := &Recoverer{
		rdb:     rdb,
		dialect: o.Dialect,
		watched: ws,
		live:    live,
		s:       s,
		log:     log,
		outage:  backoff.NewOutage(log, "redis"),
		finder:  takenlist.New(queues),
		badKeys: badKeys{m: map[string]bool{}},
	}
	if o.MeterProvider != nil {
		if err := r.registerMetrics(o.MeterProvider); err != nil {
			log.Warn("metrics: recovery counters", "err", err)
		}
	}
	return r
}

// Run replays orphan lists and promotes due replays every ScanInterval,
// starting at once, while leaderCtx is not done; the caller passes its
// leadership context, cancelled when leadership is lost. Redis and
// Liveness failures are waited out with backoff (logged once per outage).
// Run returns nil once leaderCtx is done: losing leadership is no error.
func (r *Recoverer) Run(leaderCtx context.Context) error {
	ctx := leaderCtx
	attempt := 0
	for ctx.Err() == nil {
		// Due events are promoted even when the scan failed or was slow
		// (a large keyspace): fetch retries do not wait for orphans.
		err := r.scan(ctx)
		if _, perr := r.Promote(ctx); perr != nil {
			err = errors.Join(err, perr)
		}
		wait := r.s.ScanInterval
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			r.outage.Fail(err)
			attempt++
			// Retry with backoff, but never later than the next pass.
			wait = min(wait, backoff.Delay(attempt))
		} else {
			r.outage.OK()
			attempt = 0
		}
		if !backoff.Sleep(ctx, wait) {
			break
		}
	}
	return nil
}

// scan runs one leader pass: it finds the orphan lists of every watcher and
// replays them. A key that has the wrong type is logged (once until it is
// fixed) and skipped; other errors (Redis, Liveness) end the pass and are
// returned. Run calls it every ScanInterval.
func (r *Recoverer) scan(ctx context.Context) error {
	type orphan struct {
		list, replica string
		w             Watched
	}
	var found []orphan
	ids := map[string]bool{}
	tasks, err := r.workerQueues(ctx)
	if err != nil {
		return err
	}
	finder := r.finder
	if len(tasks) > 0 {
		// The worker queues and the watchers' queues exclude each other.
		finder = takenlist.New(queuesOf(slices.Concat(r.watched, tasks)))
	}
	for _, w := range slices.Concat(r.watched, tasks) {
		lists, err := finder.Find(ctx, r.rdb, w.TakenQueue)
		if err != nil {
			return err
		}
		for _, l := range lists {
			found = append(found, orphan{l.Key, l.Replica, w})
			ids[l.Replica] = true
		}
	}
	if len(found) == 0 {
		return nil
	}
	idList := make([]string, 0, len(ids))
	for id := range ids {
		idList = append(idList, id)
	}
	alive, err := r.live.Alive(ctx, idList)
	if err != nil {
		return err
	}
	if len(alive) != len(idList) {
		return fmt.Errorf("recovery: Liveness.Alive answered %d values for %d replicas", len(alive), len(idList))
	}
	for i, id := range idList {
		ids[id] = alive[i]
	}
	for _, o := range found {
		if ids[o.replica] {
			continue
		}
		st, err := r.replayList(ctx, o.w, o.list, o.replica)
		if err != nil {
			if r.skip(err, o.list) {
				continue
			}
			return err
		}
		if st.Total() == 0 {
			continue // emptied meanwhile (another leader, or the replica's own start)
		}
		r.stats.Replayed.Add(int64(st.Replayed))
		r.stats.Delayed.Add(int64(st.Delayed))
		r.stats.DeadLettered.Add(int64(st.Dead))
		level := slog.LevelInfo
		if st.Dead > 0 {
			level = slog.LevelWarn
		}
		msg := "replayed the taken list of a dead replica"
		if o.w.Tasks {
			msg = "replayed the taken list of a dead worker"
		}
		r.log.Log(ctx, level, msg,
			"replica", o.replica, "list", o.list, "queue", o.w.InputQueue,
			"events", st.Replayed, "delayed", st.Delayed, "dead_lettered", st.Dead)
	}
	return nil
}

// workerQueues reads the task queues of the workers (keyspace.WorkerQueues)
// that are not a watcher's input queue, sorted, and keeps them for Promote.
func (r *Recoverer) workerQueues(ctx context.Context) ([]Watched, error) {
	key := keyspace.WorkerQueues(keyspace.SharedPrefix(r.rdb, r.s.Prefix))
	m, err := r.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		if r.skip(asTypeError(err, key), key) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading the worker queues: %w", err)
	}
	var tasks []Watched
	for q := range m {
		if q == "" || slices.ContainsFunc(r.watched, func(w Watched) bool { return w.InputQueue == q }) {
			continue
		}
		tasks = append(tasks, Watched{InputQueue: q, TakenQueue: keyspace.WorkerTakenQueue(q), Tasks: true})
	}
	slices.SortFunc(tasks, func(a, b Watched) int { return strings.Compare(a.InputQueue, b.InputQueue) })
	r.mu.Lock()
	r.tasks = tasks
	r.mu.Unlock()
	return tasks, nil
}

// asTypeError is err as a *TypeError of key when Redis refused a command
// for the key's type (WRONGTYPE), else err.
func asTypeError(err error, key string) error {
	if err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") {
		return &TypeError{Key: key, Err: ErrWorkerQueuesType}
	}
	return err
}

// queuesOf is the takenlist queues of ws.
func queuesOf(ws []Watched) []takenlist.Queues {
	qs := make([]takenlist.Queues, len(ws))
	for i, w := range ws {
		qs[i] = takenlist.Queues{InputQueue: w.InputQueue, TakenQueue: w.TakenQueue}
	}
	return qs
}

// Promote moves the delayed replays that are due to the consuming end of
// their input queue, in due order, and returns how many it moved. Any
// replica may call it, as often as it likes: each event moves once. A
// schedule or queue of the wrong type is logged and skipped; other errors
// end the call.
func (r *Recoverer) Promote(ctx context.Context) (int, error) {
	total := 0
	now := r.s.Now().UnixMilli()
	r.mu.Lock()
	tasks := r.tasks
	r.mu.Unlock()
	for _, w := range slices.Concat(r.watched, tasks) {
		sched := keyspace.DelaySchedule(r.s.Prefix, w.InputQueue)
		for {
			n, err := r.promote(ctx, sched, w.InputQueue, now)
			total += n
			r.stats.Promoted.Add(int64(n))
			if err != nil {
				if r.skip(err, sched) {
					break
				}
				return total, err
			}
			if n == 0 { // a call stops at BatchSize or at its byte budget
				break
			}
		}
	}
	return total, nil
}

// skip reports whether err concerns one key only (a wrong type), in which
// case it is logged once until that key works again.
func (r *Recoverer) skip(err error, key string) bool {
	var te *TypeError
	if !errors.As(err, &te) {
		return false
	}
	if r.badKeys.add(key) {
		r.log.Error("cannot recover: a key has the wrong type; skipped until fixed", "key", te.Key, "err", err)
	}
	return true
}

// registerMetrics reports the counters of r's Stats through mp, for the
// life of the process.
func (r *Recoverer) registerMetrics(mp metric.MeterProvider) error {
	m := mp.Meter("github.com/resc-go/resc/recovery")
	counter := func(name, desc string) (metric.Int64ObservableCounter, error) {
		return m.Int64ObservableCounter(name, metric.WithDescription(desc))
	}
	replayed, err1 := counter("resc.recovery.replayed", "Events of dead replicas put back in their input queue by this replica as leader.")
	delayed, err2 := counter("resc.recovery.delayed", "Events of dead replicas put in the delay schedule (replayed before: growing delay).")
	dead, err3 := counter("resc.recovery.dead_lettered", "Events replayed more than max_replays, sent to the dead-letter list.")
	promoted, err4 := counter("resc.recovery.promoted", "Due events moved from a delay schedule (replays, fetch retries) to their input queue.")
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return err
	}
	s := &r.stats
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(replayed, s.Replayed.Load())
		o.ObserveInt64(delayed, s.Delayed.Load())
		o.ObserveInt64(dead, s.DeadLettered.Load())
		o.ObserveInt64(promoted, s.Promoted.Load())
		return nil
	}, replayed, delayed, dead, promoted)
	return err
}
