package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/resc-go/resc/cluster"
	"github.com/resc-go/resc/fetch"
	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/embedded"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/recovery"
	"github.com/resc-go/resc/telemetry"
	"github.com/resc-go/resc/watcher"
)

const defaultHTTPAddr = "127.0.0.1:9464"

type runFlags struct {
	replica      string
	redisURL     string
	httpAddr     string
	embedded     string
	drainTimeout time.Duration
	replicaGiven bool // the id was set by flag or environment
}

// cmdRun is `resc run [flags] CONFIG` and `resc CONFIG`: it runs every
// watcher of CONFIG until SIGTERM or SIGINT, then drains and exits 0.
func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	var f runFlags
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.replica, "replica-id", os.Getenv("RESC_REPLICA_ID"), "this replica's id")
	fs.StringVar(&f.redisURL, "redis-url", os.Getenv("RESC_REDIS_URL"), "Redis URL, overriding the configuration's")
	fs.StringVar(&f.httpAddr, "http-addr", os.Getenv("RESC_HTTP_ADDR"), "address of /healthz and /readyz (\"off\": none)")
	fs.StringVar(&f.embedded, "embedded", envOr("RESC_EMBEDDED", "never"), "never, auto or always: an in-memory Redis for trying")
	drain := envOr("RESC_DRAIN_TIMEOUT", "30s")
	fs.Func("drain-timeout", "how long in-flight events may finish on SIGTERM (default 30s)", func(s string) error { drain = s; return nil })
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return &exitError{code: 2}
	}
	if len(pos) != 1 {
		return &exitError{code: 2, msg: "usage: resc run [flags] CONFIG"}
	}
	if f.drainTimeout, err = time.ParseDuration(drain); err != nil || f.drainTimeout <= 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("bad drain timeout %q: want a positive duration like 30s", drain)}
	}
	level, err := telemetry.ParseLevel(os.Getenv("RESC_LOG"))
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	log := telemetry.NewLogger(stderr, level)
	telemetry.RouteRedisLog(log)

	l, err := load(pos[0])
	if err != nil {
		return reportLoad(stderr, err)
	}
	for _, w := range l.cfg.Warnings {
		log.Warn("configuration: "+w.Message, "path", w.Path)
	}
	f.replicaGiven = f.replica != ""
	if f.replica == "" {
		f.replica = defaultReplicaID()
	} else if err := checkReplicaID(f.replica); err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	if f.redisURL == "" {
		f.redisURL = l.cfg.RedisURL
	}
	if f.httpAddr == "" {
		f.httpAddr = l.cfg.HTTPAddr
	}
	if f.httpAddr == "" {
		f.httpAddr = defaultHTTPAddr
	}

	emb, err := startEmbedded(ctx, &f, stderr, log, l)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	if emb != nil {
		defer emb.Close()
	}
	if f.redisURL == "" {
		return &exitError{code: 2, msg: "no Redis URL: set redis.url in the configuration, --redis-url or RESC_REDIS_URL"}
	}
	opts, err := redis.ParseURL(f.redisURL)
	if err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("bad Redis URL %q: %v", f.redisURL, err)}
	}
	// Each watcher holds one connection in BLMOVE and one per commit
	// pipeline at least; leave room for both and for /readyz.
	opts.PoolSize = max(opts.PoolSize, 10+4*len(l.cfg.Watchers))
	// No silent retries inside go-redis: a take or commit whose reply was
	// lost must surface, so that the watcher replays what it may have left
	// in its taken list; the loops retry with their own backoff.
	opts.MaxRetries = -1
	rdb := redis.NewClient(opts)
	defer rdb.Close()

	clusterLog := log // package cluster adds the replica id itself
	log = log.With("replica", f.replica)
	tel, err := telemetry.Setup(ctx, telemetry.Options{Version: version, Replica: f.replica}, log)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Warn("flushing telemetry", "err", err)
		}
	}()
	traceParent, err := traceParentMode(os.Getenv("RESC_TRACE_PARENT"))
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	var traceTTL time.Duration
	if v := os.Getenv("RESC_TRACE_CONTEXT_TTL"); v != "" {
		if traceTTL, err = time.ParseDuration(v); err != nil || traceTTL < time.Second {
			return &exitError{code: 2, msg: fmt.Sprintf("bad RESC_TRACE_CONTEXT_TTL %q: want a duration of at least 1s like 1h", v)}
		}
	}
	var tracer trace.TracerProvider
	if tel.Tracing() {
		tracer = tel.TracerProvider()
	}
	// Health first: /healthz answers while Redis is still awaited, and a
	// bad address fails at once.
	var srv *telemetry.Server
	if f.httpAddr != "off" {
		if srv, err = telemetry.Listen(f.httpAddr, func(ctx context.Context) error { return rdb.Ping(ctx).Err() }, log); err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
		srv.Handle("GET /metrics", tel.Handler())
	}
	srvCtx, stopSrv := context.WithCancel(ctx)
	srvDone := make(chan error, 1)
	if srv != nil {
		go func() { srvDone <- srv.Run(srvCtx) }()
	} else {
		srvDone <- nil
	}
	defer func() {
		stopSrv()
		<-srvDone
	}()
	dialect, err := detectDialect(ctx, rdb, log)
	if err != nil {
		return nil // interrupted before Redis answered: nothing was taken
	}
	if dialect.Legacy && emb == nil {
		log.Warn("this Redis does not run #!lua scripts (Redis < 7 or the embedded server): scripts run without the out-of-memory guard", "dialect", dialect.String())
	}

	fetchOpts := []fetch.Option{fetch.WithMeterProvider(tel.MeterProvider())}
	if tracer != nil {
		fetchOpts = append(fetchOpts, fetch.WithTracerProvider(tracer))
	}
	fetcher := fetch.New(l.cfg.Fetch, log, fetchOpts...)

	// Join the cluster: the registration's lease fences the watchers.
	cc := l.cfg.Cluster
	cs := cluster.Settings{
		Prefix:            l.cfg.KeyPrefix,
		HeartbeatInterval: cc.HeartbeatInterval,
		DeadAfter:         cc.DeadAfter,
		LeaderTTL:         cc.LeaderTTL,
	}.WithDefaults()
	if err := cs.Validate(); err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("%s: cluster: %v", pos[0], err)}
	}
	rs := recovery.Settings{Prefix: cs.Prefix, ScanInterval: cc.ScanInterval, ReplayDelay: cc.ReplayDelay, MaxReplays: cc.MaxReplays}
	if cc.MaxReplaysSet && cc.MaxReplays == 0 {
		rs.MaxReplays = -1 // recovery's "no replay at all"
	}
	info := cluster.Info{ID: f.replica, PID: os.Getpid(), Version: version, Started: time.Now()}
	info.Host, _ = os.Hostname()
	watched := make([]recovery.Watched, len(l.cfg.Watchers))
	for i, wc := range l.cfg.Watchers {
		info.TakenLists = append(info.TakenLists, keyspace.TakenList(wc.TakenQueue, f.replica))
		watched[i] = recovery.Watched{InputQueue: wc.InputQueue, TakenQueue: wc.TakenQueue}
	}
	member, err := register(ctx, rdb, cs, info, cluster.RegisterOptions{
		Dialect: dialect,
		// A restart under the same id after a crash waits for the old
		// registration to expire; a second live replica is refused.
		WaitForExpiry: f.replicaGiven,
	}, clusterLog)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return &exitError{code: 1, msg: err.Error()}
	}
	// The membership outlives the watchers: it is stopped (and the replica
	// deregistered) only once they have handed back what they held.
	memberCtx, stopMember := context.WithCancel(context.WithoutCancel(ctx))
	memberDone := make(chan error, 1)
	go func() { memberDone <- member.Run(memberCtx) }()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// A stale replica (its id taken over by a live one) must stop.
		select {
		case err := <-memberDone:
			memberDone <- err
			if err != nil {
				return fmt.Errorf("cluster membership: %w", err)
			}
		case <-gctx.Done():
		}
		return nil
	})
	elector, err := cluster.NewElector(rdb, cs, f.replica, clusterLog)
	if err != nil {
		stopMember()
		return &exitError{code: 1, msg: err.Error()}
	}
	rec := recovery.New(rdb, dialect, watched, cluster.NewLiveness(rdb, cs.Prefix), rs, log)
	if err := registerClusterMetrics(tel.MeterProvider(), elector, rec); err != nil {
		log.Warn("metrics: cluster", "err", err)
	}
	g.Go(func() error {
		return elector.Run(gctx, func(leading context.Context) {
			log.Warn("leader: replaying the taken lists of dead replicas")
			_ = rec.Run(leading)
		})
	})
	for i, wc := range l.cfg.Watchers {
		g.Go(func() error {
			for {
				lease, err := member.WaitLease(gctx)
				if err != nil {
					return nil // stopping
				}
				w := watcher.New(wc, l.rules[i], rdb, fetcher, watcher.Options{
					Replica:         f.replica,
					ListenerChannel: l.cfg.ListenerChannel,
					Dialect:         dialect,
					DrainTimeout:    f.drainTimeout,
					Logger:          log,
					Fence:           lease,
					Prefix:          cs.Prefix,
					Permanent:       fetch.IsPermanent,
					Retry: watcher.RetrySettings{
						Attempts: l.cfg.Reschedule.Attempts,
						Delay:    l.cfg.Reschedule.Delay,
						MaxDelay: l.cfg.Reschedule.MaxDelay,
					},
					TracerProvider: tracer,
					TraceParent:    traceParent,
					MeterProvider:  tel.MeterProvider(),
				})
				if err := w.Run(gctx); !errors.Is(err, watcher.ErrFenced) {
					return err
				}
				// Fenced: wait for the membership to register again.
			}
		})
	}
	log.Warn("resc-go started", "version", version, "config", pos[0], "watchers", len(l.cfg.Watchers), "http", f.httpAddr)

	// Shutdown, in order: the watchers stop taking, drain and hand back, and
	// leadership is released (g); then the heartbeat stops and the replica
	// deregisters, so that nobody waits for it to be declared dead.
	err = g.Wait()
	stopMember()
	<-memberDone
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if derr := member.Deregister(dctx); derr != nil && !errors.Is(derr, cluster.ErrNotRegistered) {
		log.Warn("deregistering", "err", derr)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Warn("resc-go stopped")
	return nil
}

// traceParentMode reads RESC_TRACE_PARENT: how an event's consumer span
// continues the trace context stored for it, "link" (default, as the
// OpenTelemetry messaging conventions advise) or "child".
func traceParentMode(v string) (child bool, err error) {
	switch strings.TrimSpace(v) {
	case "", "link":
		return false, nil
	case "child":
		return true, nil
	}
	return false, fmt.Errorf("bad RESC_TRACE_PARENT %q: use link or child", v)
}

// register registers this replica, waiting out a Redis outage with backoff
// (one log line per outage). A refusal (id in use, bad settings) is final.
func register(ctx context.Context, rdb *redis.Client, cs cluster.Settings, info cluster.Info, opts cluster.RegisterOptions, log *slog.Logger) (*cluster.Membership, error) {
	outage := backoff.NewOutage(log, "redis")
	for attempt := 1; ; attempt++ {
		m, err := cluster.Register(ctx, rdb, cs, info, opts, log)
		if err == nil {
			outage.OK()
			return m, nil
		}
		var re redis.Error
		if ctx.Err() != nil || errors.Is(err, cluster.ErrIDInUse) || errors.Is(err, cluster.ErrWrongType) || errors.As(err, &re) {
			return nil, err
		}
		outage.Fail(err)
		if !backoff.Sleep(ctx, backoff.Delay(attempt)) {
			return nil, ctx.Err()
		}
	}
}

// detectDialect waits for Redis, with backoff and one log line per outage,
// and asks it which script form it runs.
func detectDialect(ctx context.Context, rdb *redis.Client, log *slog.Logger) (script.Dialect, error) {
	outage := backoff.NewOutage(log, "redis")
	for attempt := 1; ; attempt++ {
		d, err := script.Detect(ctx, rdb)
		if err == nil {
			outage.OK()
			return d, nil
		}
		if ctx.Err() != nil {
			return d, ctx.Err()
		}
		outage.Fail(err)
		if !backoff.Sleep(ctx, backoff.Delay(attempt)) {
			return d, ctx.Err()
		}
	}
}

// startEmbedded starts the in-memory server when f.embedded asks for it,
// and points f.redisURL at it.
func startEmbedded(ctx context.Context, f *runFlags, stderr io.Writer, log *slog.Logger, l *loaded) (*embedded.Server, error) {
	switch f.embedded {
	case "never", "":
		return nil, nil
	case "always":
	case "auto":
		if f.redisURL != "" && !embedded.IsLoopbackURL(f.redisURL) {
			return nil, nil // a remote server is never replaced
		}
		if f.redisURL != "" && reachable(ctx, f.redisURL) {
			log.Warn("using the Redis server at " + f.redisURL)
			return nil, nil
		}
	default:
		return nil, fmt.Errorf("bad --embedded %q: use never, auto or always", f.embedded)
	}
	emb, err := embedded.Start(f.redisURL)
	if err != nil {
		return nil, err
	}
	f.redisURL = emb.URL()
	log.Warn("EMBEDDED in-memory Redis: for trying and developing only, nothing is persisted", "addr", emb.Addr())
	input := "QUEUE"
	if len(l.cfg.Watchers) > 0 {
		input = l.cfg.Watchers[0].InputQueue
	}
	fmt.Fprintf(stderr, "\n  try it:  redis-cli -p %s lpush %s acq/plantA/42      (an event of the bundled example)\n", emb.Port(), input)
	fmt.Fprintf(stderr, "      or:  go run ./cmd/resc push --redis-url %s %s acq/plantA/42\n", emb.URL(), input)
	fmt.Fprintf(stderr, "  then:    redis-cli -p %s keys '*'\n\n", emb.Port())
	return emb, nil
}

func reachable(ctx context.Context, url string) bool {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return false
	}
	opts.DialTimeout = 500 * time.Millisecond
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return c.Ping(ctx).Err() == nil
}

// defaultReplicaID is the hostname plus a random suffix: unique, but a
// restart gets a new id, so set --replica-id where the start replay of a
// replica's own taken list matters.
func defaultReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "resc"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// checkReplicaID refuses ids that would make odd key names.
func checkReplicaID(id string) error {
	if len(id) > 200 {
		return errors.New("replica id longer than 200 bytes")
	}
	if strings.ContainsFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' }) {
		return fmt.Errorf("replica id %q: no spaces, control characters or '/'", id)
	}
	return nil
}
