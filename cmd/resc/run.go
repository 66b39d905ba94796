package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"go.opentelemetry.io/otel/trace"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/console"
	"github.com/resc-go/resc/internal/embedded"
	"github.com/resc-go/resc/internal/redisconn"
	"github.com/resc-go/resc/replica"
	"github.com/resc-go/resc/telemetry"
)

const defaultHTTPAddr = "127.0.0.1:9464"

type runFlags struct {
	config       string
	replica      string
	redisURL     string
	httpAddr     string
	httpAddrFrom string // the setting httpAddr came from, for messages
	embedded     string
	drainTimeout time.Duration
	ui           bool // serve the console at /ui
	noPprof      bool // RESC_PPROF=off
	replicaGiven bool // the id was set by flag or environment
	level        slog.Level
	traceParent  bool          // RESC_TRACE_PARENT=child
	traceTTL     time.Duration // RESC_TRACE_CONTEXT_TTL, 0: the default
}

// parseRunFlags reads the flags and environment of `resc run`; every bad
// value is a usage error (exit 2), reported before anything starts.
func parseRunFlags(args []string, stderr io.Writer) (*runFlags, error) {
	f := &runFlags{}
	fs := newFlags("run", stderr)
	fs.StringVar(&f.replica, "replica-id", os.Getenv("RESC_REPLICA_ID"), "this replica's id")
	fs.StringVar(&f.redisURL, "redis-url", os.Getenv("RESC_REDIS_URL"), "Redis URL, overriding the configuration's")
	fs.StringVar(&f.httpAddr, "http-addr", os.Getenv("RESC_HTTP_ADDR"), "address of /healthz, /readyz, /metrics, /debug/pprof/ and /ui/ (\"off\": none)")
	fs.StringVar(&f.embedded, "embedded", envOr("RESC_EMBEDDED", "never"), "never, auto or always: an in-memory Redis for trying")
	uiEnv, uiErr := parseBool("RESC_UI", os.Getenv("RESC_UI"))
	pprofOn, pprofErr := parseBool("RESC_PPROF", envOr("RESC_PPROF", "on"))
	fs.BoolVar(&f.ui, "ui", uiEnv, "serve the operators' console at /ui of --http-addr")
	drain := envOr("RESC_DRAIN_TIMEOUT", "30s")
	fs.Func("drain-timeout", "how long in-flight events may finish on SIGTERM (default 30s)", func(s string) error { drain = s; return nil })
	pos, err := positional(fs, args, 1, false, "usage: resc run [flags] CONFIG")
	if err != nil {
		return nil, err
	}
	f.config = pos[0]
	f.httpAddrFrom = settingOf(fs, "http-addr", "RESC_HTTP_ADDR", "")
	if err := cmp.Or(uiErr, pprofErr); err != nil {
		return nil, &exitError{code: 2, msg: err.Error()}
	}
	f.noPprof = !pprofOn
	if f.drainTimeout, err = time.ParseDuration(drain); err != nil || f.drainTimeout <= 0 {
		return nil, &exitError{code: 2, msg: fmt.Sprintf("bad drain timeout %q: want a positive duration like 30s", drain)}
	}
	if f.level, err = telemetry.ParseLevel(os.Getenv("RESC_LOG")); err != nil {
		return nil, &exitError{code: 2, msg: err.Error()}
	}
	f.replicaGiven = f.replica != ""
	if f.replica == "" {
		f.replica = defaultReplicaID()
	} else if err := checkReplicaID(f.replica); err != nil {
		return nil, &exitError{code: 2, msg: err.Error()}
	}
	if f.traceParent, err = traceParentMode(os.Getenv("RESC_TRACE_PARENT")); err != nil {
		return nil, &exitError{code: 2, msg: err.Error()}
	}
	if v := os.Getenv("RESC_TRACE_CONTEXT_TTL"); v != "" {
		if f.traceTTL, err = time.ParseDuration(v); err != nil || f.traceTTL < time.Second {
			return nil, &exitError{code: 2, msg: fmt.Sprintf("bad RESC_TRACE_CONTEXT_TTL %q: want a duration of at least 1s like 1h", v)}
		}
	}
	return f, nil
}

// cmdRun is `resc run [flags] CONFIG` and `resc CONFIG`: it runs every
// watcher of CONFIG until SIGTERM or SIGINT, then drains and exits 0. The
// replica itself, and its shutdown order, are package replica's.
func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	f, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	log := telemetry.NewLogger(stderr, f.level)
	telemetry.RouteRedisLog(log)
	l, err := load(f.config)
	if err != nil {
		return reportLoad(stderr, err)
	}
	if l.cfg.ClusterByFile() {
		// check reports these too: refused before connecting.
		if ps := config.ClusterProblems(l.cfg); len(ps) > 0 {
			return reportLoad(stderr, ps)
		}
	}
	for _, w := range l.cfg.Warnings {
		log.Warn("configuration: "+w.Message, "path", w.Path)
	}
	f.settle(l.cfg)
	emb, err := startEmbedded(ctx, f, stderr, log, l)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	if emb != nil {
		defer emb.Close()
		// The server's TTLs run down until it closes, after the replica's
		// shutdown: a signal ends ctx, not the server's time.
		clock, stopClock := context.WithCancel(context.WithoutCancel(ctx))
		ticking := make(chan struct{})
		go func() { defer close(ticking); _ = emb.Run(clock) }()
		defer func() { stopClock(); <-ticking }()
	}
	rn := &run{f: f, l: l, log: log, replicaLog: log.With("replica", f.replica), stderr: stderr, emb: emb}
	if rn.tel, err = telemetry.Setup(ctx, telemetry.Options{Version: version, Replica: f.replica}, rn.replicaLog); err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := rn.tel.Shutdown(sctx); err != nil {
			rn.replicaLog.Warn("flushing telemetry", "err", err)
		}
	}()
	// A refused command stops the replica (guardPermissions) through this
	// context's cause.
	ctx, rn.stop = context.WithCancelCause(ctx)
	defer rn.stop(nil)
	// Health first: /healthz answers while Redis is still awaited, and a
	// bad address or console setting fails at once.
	if err := rn.serve(ctx); err != nil {
		return err
	}
	rdb, err := runClient(ctx, f.redisURL, l.cfg, len(l.cfg.Watchers), log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for Redis: nothing was taken
		}
		return err
	}
	defer rdb.Close()
	if rdb.Kind == redisconn.KindCluster {
		if ps := config.ClusterProblems(l.cfg); len(ps) > 0 {
			return reportLoad(stderr, ps)
		}
	}
	rn.connected.Store(rdb)
	return rn.replica(ctx, rdb)
}

// settle gives the Redis URL and the HTTP address their values from the
// configuration or the defaults, and says where the address came from.
func (f *runFlags) settle(cfg *config.Config) {
	f.redisURL = cmp.Or(f.redisURL, cfg.RedisURL)
	f.httpAddr = cmp.Or(f.httpAddr, cfg.HTTPAddr, defaultHTTPAddr)
	if f.httpAddrFrom == "" {
		f.httpAddrFrom = "the default of --http-addr and RESC_HTTP_ADDR"
		if cfg.HTTPAddr != "" {
			f.httpAddrFrom = "http_addr in " + f.config
		}
	}
}

// run is what cmdRun has set up, for its parts.
type run struct {
	f          *runFlags
	l          *loaded
	log        *slog.Logger
	replicaLog *slog.Logger // log with the replica's id
	stderr     io.Writer
	emb        *embedded.Server // nil unless trying with an in-memory Redis
	tel        *telemetry.Telemetry
	srv        *telemetry.Server // nil with --http-addr off
	ui         console.Options   // with --ui
	stop       context.CancelCauseFunc
	connected  atomic.Pointer[redisconn.Client]
	running    atomic.Pointer[replica.Replica]
}

// serve starts the HTTP server (health, metrics), unless it is off. Its
// /readyz answers 200 once Redis answers, the ACL user was refused
// nothing (ctx's cause), and the replica works (registered, on a live
// lease, not stopping).
func (rn *run) serve(ctx context.Context) (err error) {
	if rn.f.httpAddr != "off" {
		if rn.srv, err = telemetry.ListenWith(rn.f.httpAddr, rn.ready(ctx), rn.replicaLog, telemetry.ServerOptions{NoPprof: rn.f.noPprof}); err != nil {
			return listenFailed(err, rn.f.httpAddrFrom)
		}
		rn.srv.Handle("GET /metrics", rn.tel.Handler())
	}
	if rn.f.ui {
		if rn.srv == nil {
			return &exitError{code: 2, msg: "--ui needs an HTTP address: --http-addr is off"}
		}
		if rn.ui, err = uiSettings(version, rn.replicaLog); err != nil {
			return &exitError{code: 2, msg: err.Error()}
		}
	}
	if rn.srv != nil {
		rn.srv.Start() // /healthz answers while Redis is awaited
	}
	return nil
}

// ready is the readiness check of /readyz (serve).
func (rn *run) ready(ctx context.Context) func(context.Context) error {
	return func(rctx context.Context) error {
		var refused *exitError
		if errors.As(context.Cause(ctx), &refused) {
			return errors.New(refused.msg)
		}
		c := rn.connected.Load()
		if c == nil {
			return errors.New("connecting to Redis")
		}
		if err := c.Ping(rctx).Err(); err != nil {
			return err
		}
		if r := rn.running.Load(); r != nil {
			return r.Ready()
		}
		return errors.New("starting")
	}
}

// replica runs the replica (and the console, with --ui) on rdb until ctx
// is done or the Redis user is found to lack a permission.
func (rn *run) replica(ctx context.Context, rdb *redisconn.Client) error {
	f := rn.f
	guardPermissions(rdb, rn.stop, func(ctx context.Context) error {
		if r := rn.running.Load(); r != nil {
			return r.CheckPermissions(ctx)
		}
		return nil
	})
	if f.ui {
		c, made, err := newConsole(rdb.UniversalClient, rn.l.cfg, rn.ui, rn.emb != nil)
		if err != nil {
			return &exitError{code: 2, msg: err.Error()}
		}
		c.Register(rn.srv)
		go func() { _ = c.Run(ctx) }() // readings stop with ctx; the server stops after the replica
		printConsoleURL(rn.stderr, rn.srv.Addr(), made)
	}
	var tracer trace.TracerProvider
	if rn.tel.Tracing() {
		tracer = rn.tel.TracerProvider()
	}
	r, err := replica.New(replica.Options{
		ID:              f.replica,
		WaitForExpiry:   f.replicaGiven,
		Config:          rn.l.cfg,
		Rules:           rn.l.rules,
		Redis:           rdb.UniversalClient, // the go-redis client itself: packages tell a cluster client by its type
		Server:          rn.srv,
		DrainTimeout:    f.drainTimeout,
		Version:         version,
		Logger:          rn.log, // package replica adds the replica id itself
		TracerProvider:  tracer,
		MeterProvider:   rn.tel.MeterProvider(),
		TraceParent:     f.traceParent,
		TraceContextTTL: f.traceTTL,
		Embedded:        rn.emb != nil,
		ConfigPath:      f.config,
		HTTPAddr:        f.httpAddr,
	})
	if err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("%s: %v", f.config, err)}
	}
	rn.running.Store(r)
	return rn.stopped(ctx, r.Run(ctx))
}

// stopped is the outcome of a replica's Run that returned err: a refused
// permission is an exit 2 naming it.
func (rn *run) stopped(ctx context.Context, err error) error {
	var refused *exitError
	if errors.As(context.Cause(ctx), &refused) {
		rn.log.Error("stopped: " + refused.msg)
		return refused
	}
	if errors.Is(err, replica.ErrNoPermission) {
		// Checked at start: no retry mends it.
		msg := permissionWords(err) + "; see docs/redis.md, ACL users"
		rn.log.Error("stopped: " + msg)
		return &exitError{code: 2, msg: msg}
	}
	return err
}

// runClient is the go-redis client of a replica of nwatchers watchers.
func runClient(ctx context.Context, url string, cfg *config.Config, nwatchers int, log *slog.Logger) (*redisconn.Client, error) {
	return connect(ctx, redisconn.Options{
		URL:      url,
		Settings: cfg.Redis,
		// Each watcher holds one connection in BLMOVE and one per commit
		// pipeline at least; leave room for both and for /readyz.
		PoolSize: 10 + 4*nwatchers,
		// No silent retries inside go-redis: a take or commit whose reply
		// was lost must surface, so that the watcher replays what it may
		// have left in its taken list; the loops retry with their own
		// backoff.
		MaxRetries: -1,
		Wait:       true, // Redis may start after resc
		Logger:     log,
	})
}

// connect opens the client o describes, with the exit code of its error:
// 2 for a setup problem, 1 for a Redis that did not answer.
func connect(ctx context.Context, o redisconn.Options) (*redisconn.Client, error) {
	o.Getenv = os.Getenv
	c, err := redisconn.Open(ctx, o)
	var setup *redisconn.Error
	switch {
	case errors.As(err, &setup):
		return nil, &exitError{code: 2, msg: err.Error()}
	case err != nil:
		return nil, &exitError{code: 1, msg: err.Error()}
	}
	return c, nil
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
		if f.redisURL != "" && reachable(ctx, f.redisURL, l.cfg) {
			log.Warn("using the Redis server at " + redisconn.Redact(f.redisURL))
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

func reachable(ctx context.Context, url string, cfg *config.Config) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := redisconn.Open(ctx, redisconn.Options{URL: url, Settings: cfg.Redis, Getenv: os.Getenv,
		MaxRetries: -1, DialTimeout: 500 * time.Millisecond})
	if err != nil {
		return false
	}
	defer c.Close()
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
