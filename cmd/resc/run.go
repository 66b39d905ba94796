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
	"golang.org/x/sync/errgroup"

	"github.com/resc-go/resc/fetch"
	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/embedded"
	"github.com/resc-go/resc/internal/script"
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

	log = log.With("replica", f.replica)
	// Health first: /healthz answers while Redis is still awaited, and a
	// bad address fails at once.
	var srv *telemetry.Server
	if f.httpAddr != "off" {
		if srv, err = telemetry.Listen(f.httpAddr, func(ctx context.Context) error { return rdb.Ping(ctx).Err() }, log); err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
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

	fetcher := fetch.New(l.cfg.Fetch, log)
	g, gctx := errgroup.WithContext(ctx)
	for i, wc := range l.cfg.Watchers {
		w := watcher.New(wc, l.rules[i], rdb, fetcher, watcher.Options{
			Replica:         f.replica,
			ListenerChannel: l.cfg.ListenerChannel,
			Dialect:         dialect,
			DrainTimeout:    f.drainTimeout,
			Logger:          log,
		})
		g.Go(func() error { return w.Run(gctx) })
	}
	log.Warn("resc-go started", "version", version, "config", pos[0], "watchers", len(l.cfg.Watchers), "http", f.httpAddr)
	err = g.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Warn("resc-go stopped")
	return nil
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
