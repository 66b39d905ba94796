package registry

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/internal/testutil"
)

// TestMain silences go-redis' own log: it prints a line per failed dial,
// which the tests that stop Redis cause on purpose.
func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	os.Exit(m.Run())
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// env is one redis-server of a test, with a client configured as resc
// configures its own (no silent retries) that honours context deadlines.
type env struct {
	t    *testing.T
	srv  *redistest.Server
	rdb  *redis.Client
	d    script.Dialect
	s    Settings
	logs *testutil.Buffer
	log  *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{
		Addr:                  srv.Addr(),
		MaxRetries:            -1,
		DialTimeout:           100 * time.Millisecond,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	d, err := script.Detect(context.Background(), rdb)
	if err != nil {
		t.Fatal(err)
	}
	if d.Legacy {
		t.Fatal("redis-server runs no #!lua scripts: Redis 7 expected")
	}
	s := TestSettings()
	// Each test its own prefix, though each has its own server too.
	s.Prefix = "t-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()) + ":"
	logs := &testutil.Buffer{}
	return &env{t: t, srv: srv, rdb: rdb, d: d, s: s.WithDefaults(), logs: logs,
		log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

func (e *env) info(id string, lists ...string) Info {
	return Info{ID: id, Host: "h", PID: 42, Version: "test", Started: time.Unix(1700000000, 0).UTC(), TakenLists: lists}
}

// register registers id with lists, failing the test on an error.
func (e *env) register(id string, opts Options, lists ...string) *Membership {
	e.t.Helper()
	opts.Settings, opts.Dialect, opts.Logger = e.s, e.d, e.log
	m, err := Register(context.Background(), e.rdb, e.info(id, lists...), opts)
	if err != nil {
		e.t.Fatalf("Register(%q): %v", id, err)
	}
	return m
}

// run runs m.Run until the end of the test (or stop is called) and
// returns a function that stops it and returns Run's error.
func run(t *testing.T, m *Membership) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Error("Membership.Run did not return within 5s of its context being done")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// eventually is testutil.EventuallyWithin(t, within, what, cond): cond
// must hold within the time given.
var eventually = testutil.EventuallyWithin

// waitDone waits for ctx to be done, up to within, and returns when it was
// noticed.
func waitDone(t *testing.T, ctx context.Context, within time.Duration, what string) time.Time {
	t.Helper()
	select {
	case <-ctx.Done():
		return time.Now()
	case <-time.After(within):
		t.Fatalf("not within %v: %s", within, what)
		return time.Time{}
	}
}
