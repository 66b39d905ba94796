// Package replica assembles one resc-go replica from a loaded
// configuration: its HTTP endpoints, its cluster membership, the leader
// election and the recovery it runs while leading, and one watcher per
// configured watcher. cmd/resc parses flags and the environment and hands
// everything here; Run is the replica's whole life.
//
// Shutdown order (the SIGTERM guarantee of the README), in one place, Run:
//
//  1. The context is cancelled: the watchers stop taking, finish what they
//     hold within the drain timeout and hand back the rest to their input
//     queues; leadership is released (the elector's Run returns). The
//     counters are published once more, drained events included.
//  2. Only then the membership stops heartbeating and the replica
//     deregisters, so that its taken lists are empty when it leaves and
//     nobody waits for it to be declared dead. The membership therefore
//     runs on a context of its own, not on Run's.
//  3. The HTTP endpoints stop last of all (they are served on Run's context,
//     so /readyz reports the stop from its start).
//
// While it runs, the replica publishes its watchers' counters every
// membership.CountersInterval for the web console (counters.go).
//
// A membership that ends by itself (its id taken over by a live replica)
// stops the whole replica with an error; a lease lost to a slow heartbeat
// fences the watchers, which start again on the next lease.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/fetch"
	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/counts"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/redisconn"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/membership"
	"github.com/resc-go/resc/recovery"
	"github.com/resc-go/resc/rules"
	"github.com/resc-go/resc/telemetry"
	"github.com/resc-go/resc/watcher"
)

// Options are what a replica is assembled from. Config, Rules and Redis
// are required; every other zero value has the default its comment gives.
type Options struct {
	// ID is the replica's id (the suffix of its taken lists); required.
	ID string
	// WaitForExpiry is set when the id was chosen by the operator: a
	// restart under the same id after a crash then waits for the old
	// registration to expire instead of being refused; a second live
	// replica with the id is still refused.
	WaitForExpiry bool
	// Config is the loaded, validated configuration; Rules its compiled
	// rules, one Ruleset per watcher, in order.
	Config *config.Config
	Rules  []*rules.Ruleset
	// Redis is the client every part shares. It should run with
	// MaxRetries -1 (see cmd/resc): a take or commit whose reply is lost
	// must surface.
	Redis redis.UniversalClient
	// Server, when not nil, is the listening HTTP server of /healthz,
	// /readyz and /metrics; Run serves it until Run returns. Nil: none.
	Server *telemetry.Server
	// DrainTimeout is how long in-flight events may finish once Run's
	// context is done; default 30 s.
	DrainTimeout time.Duration
	// Version and Started are recorded in the registry; Started defaults
	// to the time New is called.
	Version string
	Started time.Time
	// Logger; nil discards. The replica adds its id ("replica" key).
	Logger *slog.Logger
	// TracerProvider traces events and fetches; nil traces nothing (and
	// costs nothing on the hot path). MeterProvider receives every part's
	// metrics; nil records none.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// TraceParent makes an event's stored trace context the parent of its
	// span (RESC_TRACE_PARENT=child); the default is a link.
	TraceParent bool
	// TraceContextTTL is how long stored trace contexts live; zero is the
	// watcher's default, 1 h.
	TraceContextTTL time.Duration
	// Embedded is set when Redis is the embedded in-memory server, which
	// never runs #!lua scripts: the warning about them is then not logged.
	Embedded bool
	// ConfigPath and HTTPAddr are logged when the replica has started.
	ConfigPath, HTTPAddr string
}

// Replica is one assembled replica; Run it once.
type Replica struct {
	o          Options
	log        *slog.Logger // with the replica's id
	clusterLog *slog.Logger // package cluster adds the id itself
	cs         membership.Settings
	rs         recovery.Settings

	countsMu sync.Mutex
	counts   []watcherCounts // per watcher

	// member is the membership once registered; stopping is set when Run's
	// context is done (Ready).
	member   atomic.Pointer[membership.Membership]
	stopping atomic.Bool
}

// Ready says whether the replica does its work now: registered, on a live
// lease, not stopping. /readyz answers 503 with its error otherwise, so
// that a replica that lost its lease (it takes nothing until it has
// registered again) never looks ready.
func (r *Replica) Ready() error {
	m := r.member.Load()
	switch {
	case r.stopping.Load():
		return errors.New("stopping")
	case m == nil:
		return errors.New("not registered yet")
	}
	if lease := m.Lease(); lease.Err() != nil {
		return fmt.Errorf("not taking events: %w", context.Cause(lease))
	}
	return nil
}

// watcherCounts are the counts of a watcher over its successive runs:
// those of the runs that ended, and the running one.
type watcherCounts struct {
	ended   counts.Watcher
	running *watcher.Watcher
}

// New checks o and derives the settings of every part. It does no I/O.
func New(o Options) (*Replica, error) {
	if o.Config == nil || o.Redis == nil || o.ID == "" || len(o.Rules) != len(o.Config.Watchers) {
		return nil, errors.New("replica: Config, Redis, ID and one Ruleset per watcher are required")
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.Started.IsZero() {
		o.Started = time.Now()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cc := o.Config.Cluster
	cs := membership.Settings{
		Prefix:            o.Config.KeyPrefix,
		HeartbeatInterval: cc.HeartbeatInterval,
		DeadAfter:         cc.DeadAfter,
		LeaderTTL:         cc.LeaderTTL,
	}.WithDefaults()
	if err := cs.Validate(); err != nil {
		// config.Load refuses every such configuration: reaching this is a bug.
		return nil, fmt.Errorf("replica: cluster settings: %w", err)
	}
	// max_replays 0 means no replay in the configuration and in recovery.
	rs := recovery.Settings{Prefix: cs.Prefix, ScanInterval: cc.ScanInterval, ReplayDelay: cc.ReplayDelay, MaxReplays: cc.MaxReplays}
	r := &Replica{o: o, log: o.Logger.With("replica", o.ID), clusterLog: o.Logger, cs: cs, rs: rs,
		counts: make([]watcherCounts, len(o.Config.Watchers))}
	for i, cw := range o.Config.Watchers {
		// A watcher that has not run yet is published with its rules.
		c := counts.Watcher{InputQueue: cw.InputQueue, Rules: []counts.Rule{}, Queues: []counts.Queue{}}
		for j, rule := range o.Rules[i].Rules() {
			c.Rules = append(c.Rules, counts.Rule{Index: j, Name: rule.Name()})
		}
		r.counts[i].ended = c
	}
	return r, nil
}

// Run runs the replica until ctx is done, then shuts it down in the order
// of the package doc and returns nil. It returns an error when the replica
// cannot start (its id is in use, Redis refuses the registration) or must
// stop (its registration was taken over). Interrupted before Redis first
// answered, it returns nil: nothing was taken.
func (r *Replica) Run(ctx context.Context) error {
	// The HTTP endpoints answer from the start (/healthz while Redis is
	// still awaited) and stop last (step 3).
	var served errgroup.Group
	srvCtx, stopSrv := context.WithCancel(ctx)
	if r.o.Server != nil {
		served.Go(func() error { return r.o.Server.Run(srvCtx) })
	}
	defer func() {
		stopSrv()
		if err := served.Wait(); err != nil {
			r.log.Warn("http server", "err", err)
		}
	}()

	dialect, err := waitDialect(ctx, r.o.Redis, r.log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted before Redis answered: nothing was taken
		}
		return err
	}
	if dialect.Legacy && !r.o.Embedded {
		r.log.Warn("this Redis does not run #!lua scripts (Redis < 7 or the embedded server): scripts run without the out-of-memory guard", "dialect", dialect.String())
	}
	if err := r.preflight(ctx, dialect); err != nil {
		return err
	}
	member, err := r.register(ctx, dialect)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	r.member.Store(member)
	elector, err := membership.NewElector(r.o.Redis, r.o.ID, membership.Options{Settings: r.cs, Logger: r.clusterLog, MeterProvider: r.o.MeterProvider})
	if err != nil {
		r.deregister(ctx, member)
		return err
	}
	return r.serve(ctx, dialect, member, elector)
}

// serve runs the registered replica's parts and shuts them down in order
// (package doc, steps 1 and 2).
func (r *Replica) serve(ctx context.Context, dialect script.Dialect, member *membership.Membership, elector *membership.Elector) error {
	// The membership outlives the watchers (step 2): its own context.
	memberCtx, stopMember := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMember()
	var beat errgroup.Group
	memberDone := make(chan struct{})
	var memberErr error
	beat.Go(func() error {
		defer close(memberDone)
		memberErr = member.Run(memberCtx)
		return nil
	})

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// A stale replica (its id taken over by a live one) must stop.
		select {
		case <-memberDone:
			if memberErr != nil {
				return fmt.Errorf("membership: %w", memberErr)
			}
		case <-gctx.Done():
		}
		return nil
	})
	rec := recovery.New(r.o.Redis, r.watched(), membership.NewLiveness(r.o.Redis, r.cs.Prefix),
		recovery.Options{Settings: r.rs, Dialect: dialect, Logger: r.log, MeterProvider: r.o.MeterProvider})
	pruner := membership.NewPruner(r.o.Redis, r.o.Config.Cluster.DeadRetention,
		membership.Options{Settings: r.cs, Dialect: dialect, Logger: r.clusterLog})
	g.Go(func() error {
		return elector.Run(gctx, func(leading context.Context) {
			r.log.Warn("leader: replaying the taken lists of dead replicas")
			// The pruner keeps the entries whose taken lists hold
			// events: the recoverer replays them first.
			var lead errgroup.Group
			lead.Go(func() error { return rec.Run(leading) })
			lead.Go(func() error { return pruner.Run(leading, r.rs.WithDefaults().ScanInterval) })
			_ = lead.Wait()
		})
	})
	fetcher := r.fetcher()
	for i := range r.o.Config.Watchers {
		g.Go(func() error { return r.runWatcher(gctx, i, member, dialect, fetcher) })
	}
	published := make(chan struct{})
	go func() {
		defer close(published)
		r.publishCounters(gctx)
	}()
	r.log.Warn("resc-go started", "version", r.o.Version, "config", r.o.ConfigPath, "watchers", len(r.o.Config.Watchers), "http", r.o.HTTPAddr)

	// Step 1: the watchers drain and hand back, leadership is released.
	go func() {
		<-gctx.Done()
		r.stopping.Store(true) // not ready from the start of the stop
	}()
	err := g.Wait()
	<-published
	r.publish(context.WithoutCancel(ctx)) // the final counts, drained included
	// Step 2: the heartbeat stops, then the replica deregisters.
	stopMember()
	_ = beat.Wait()
	r.deregister(ctx, member)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	r.log.Warn("resc-go stopped")
	return nil
}

// runWatcher runs watcher i on each lease of the membership in turn: a
// watcher fenced by a lost lease stops at once, and starts again once the
// membership has registered again.
func (r *Replica) runWatcher(ctx context.Context, i int, member *membership.Membership, dialect script.Dialect, fetcher *fetch.Client) error {
	cfg := r.o.Config
	for {
		lease, err := member.WaitLease(ctx)
		if err != nil {
			return nil // stopping
		}
		w := watcher.New(cfg.Watchers[i], r.o.Rules[i], r.o.Redis, fetcher, watcher.Options{
			Replica:              r.o.ID,
			ListenerChannel:      cfg.ListenerChannel,
			ListenerStream:       cfg.ListenerStream,
			ListenerStreamMaxLen: cfg.ListenerStreamMaxLen,
			MaxEventBytes:        cfg.MaxEventBytes,
			Dialect:              dialect,
			DrainTimeout:         r.o.DrainTimeout,
			Logger:               r.log,
			Fence:                lease,
			Prefix:               r.cs.Prefix,
			Permanent:            fetch.IsPermanent,
			Retry: watcher.RetrySettings{
				Attempts: cfg.Reschedule.Attempts,
				Delay:    cfg.Reschedule.Delay,
				MaxDelay: cfg.Reschedule.MaxDelay,
			},
			TracerProvider:  r.o.TracerProvider,
			TraceParent:     r.o.TraceParent,
			TraceContextTTL: r.o.TraceContextTTL,
			MeterProvider:   r.meterProvider(),
		})
		r.running(i, w)
		err = w.Run(ctx)
		r.ended(i, w)
		if !errors.Is(err, watcher.ErrFenced) {
			return err
		}
	}
}

func (r *Replica) fetcher() *fetch.Client {
	return fetch.New(fetch.Options{Settings: r.o.Config.Fetch, Logger: r.log, TracerProvider: r.o.TracerProvider, MeterProvider: r.meterProvider()})
}

// meterProvider is the provider of the watchers and the fetch client: a
// no-op one when none is given, as they have always been given one.
func (r *Replica) meterProvider() metric.MeterProvider {
	if r.o.MeterProvider == nil {
		return noop.NewMeterProvider()
	}
	return r.o.MeterProvider
}

func (r *Replica) watched() []recovery.Watched {
	watched := make([]recovery.Watched, len(r.o.Config.Watchers))
	for i, wc := range r.o.Config.Watchers {
		watched[i] = recovery.Watched{InputQueue: wc.InputQueue, TakenQueue: wc.TakenQueue}
	}
	return watched
}

// register registers this replica, waiting out what a running replica
// waits out (redisconn.Transient: Redis unreachable, loading, a Redis
// Cluster down or without its slots...) with backoff, logged as a start
// that waits (startWait). A refusal (id in use, bad settings, any other
// Redis error reply) is final.
func (r *Replica) register(ctx context.Context, dialect script.Dialect) (*membership.Membership, error) {
	info := membership.Info{ID: r.o.ID, PID: os.Getpid(), Version: r.o.Version, Started: r.o.Started}
	info.Host, _ = os.Hostname()
	for _, wc := range r.o.Config.Watchers {
		info.TakenLists = append(info.TakenLists, keyspace.TakenList(wc.TakenQueue, r.o.ID))
	}
	opts := membership.Options{Settings: r.cs, Dialect: dialect, Logger: r.clusterLog, WaitForExpiry: r.o.WaitForExpiry}
	wait := newStartWait(r.log, "registering")
	for attempt := 1; ; attempt++ {
		m, err := membership.Register(ctx, r.o.Redis, info, opts)
		if err == nil {
			wait.ok()
			return m, nil
		}
		if ctx.Err() != nil || errors.Is(err, membership.ErrIDInUse) || errors.Is(err, membership.ErrWrongType) || !redisconn.Transient(err) {
			return nil, err
		}
		wait.fail(err)
		if !backoff.Sleep(ctx, backoff.Delay(attempt)) {
			return nil, ctx.Err()
		}
	}
}

// deregister removes the replica from the registry on a fresh context: it
// runs once Run's context is done.
func (r *Replica) deregister(ctx context.Context, member *membership.Membership) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := member.Deregister(dctx); err != nil && !errors.Is(err, membership.ErrNotRegistered) {
		r.log.Warn("deregistering", "err", err)
	}
}

// waitDialect waits for Redis as register does, and asks it which script
// form it runs.
func waitDialect(ctx context.Context, rdb redis.Scripter, log *slog.Logger) (script.Dialect, error) {
	wait := newStartWait(log, "detecting the script dialect")
	for attempt := 1; ; attempt++ {
		d, err := script.Detect(ctx, rdb)
		if err == nil {
			wait.ok()
			return d, nil
		}
		if ctx.Err() != nil {
			return d, ctx.Err()
		}
		if !redisconn.Transient(err) {
			return d, err
		}
		wait.fail(err)
		if !backoff.Sleep(ctx, backoff.Delay(attempt)) {
			return d, ctx.Err()
		}
	}
}
