package watcher

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/internal/testutil"
	"github.com/resc-go/resc/rules"
)

// TestMain runs the tests with more of them in parallel than the default
// (GOMAXPROCS) unless -parallel is given: each has a redis-server of its
// own, and most of their time is spent waiting on Redis (a watcher's stop
// waits for its BLMOVE, a second), not on a CPU.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", strconv.Itoa(max(runtime.GOMAXPROCS(0), 16)))
	}
	os.Exit(m.Run())
}

// fixedNow is the injected clock of the tests: set scores and dead-letter
// times come from it.
var fixedNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// harness is one watcher on its own redis-server.
type harness struct {
	t      testing.TB
	srv    *redistest.Server
	rdb    *redis.Client
	w      *Watcher
	logs   *testutil.Buffer
	cancel context.CancelFunc
	done   chan error
}

// newHarness compiles a watcher of input queue "in" with the given rules and
// creates it; start runs it.
func newHarness(t testing.TB, rs []config.Rule, f Fetcher, mod func(*config.Watcher, *Options)) *harness {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client()
	cw := config.Watcher{InputQueue: "in", TakenQueue: "in/taken", Rules: rs}
	for i := range cw.Rules {
		cw.Rules[i].Index = i
		for j := range cw.Rules[i].Make {
			if cw.Rules[i].Make[j].Task == "" {
				cw.Rules[i].Make[j].Task = config.DefaultTask
			}
		}
	}
	logs := &testutil.Buffer{}
	opts := Options{
		Replica: "r1",
		Now:     func() time.Time { return fixedNow },
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cw, &opts)
	}
	ruleset, problems := rules.Compile("test.json", cw)
	if len(problems) > 0 {
		t.Fatalf("rules: %v", problems)
	}
	d, err := script.Detect(context.Background(), rdb)
	if err != nil {
		t.Fatal(err)
	}
	opts.Dialect = d
	return &harness{t: t, srv: srv, rdb: rdb, w: New(cw, ruleset, rdb, f, opts), logs: logs}
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.w.Run(ctx) }()
	h.t.Cleanup(func() {
		if h.cancel != nil {
			h.stop()
		}
	})
}

// stop cancels Run and waits for it to return.
func (h *harness) stop() error {
	h.t.Helper()
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		h.t.Fatal("watcher did not stop within 30s")
		return nil
	}
}

func (h *harness) list(key string) []string {
	h.t.Helper()
	v, err := h.rdb.LRange(context.Background(), key, 0, -1).Result()
	if err != nil {
		h.t.Fatalf("LRANGE %s: %v", key, err)
	}
	return v
}

func (h *harness) push(events ...string) {
	h.t.Helper()
	args := make([]any, len(events))
	for i, e := range events {
		args[i] = e
	}
	if err := h.rdb.LPush(context.Background(), "in", args...).Err(); err != nil {
		h.t.Fatal(err)
	}
}

// waitIdle waits until n events were handled one way or another and the
// taken list is empty.
func (h *harness) waitHandled(n int64) {
	h.t.Helper()
	testutil.Eventually(h.t, "events handled", func() bool {
		s := &h.w.stats
		return s.Committed.Load()+s.DeadLettered.Load()+s.NotOwned.Load() >= n
	})
}

func rule(name, on string, makes ...config.Maker) config.Rule {
	return config.Rule{Name: name, On: on, Make: makes}
}

func mk(task, queue, set string) config.Maker {
	return config.Maker{Task: task, Queue: queue, Set: set}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(a) == len(b)
}

// onlyDead returns the one entry of the dead-letter list of "in", failing
// the test when there is not exactly one.
func (h *harness) onlyDead() deadletter.Entry {
	h.t.Helper()
	dead := h.list("in/dead")
	if len(dead) != 1 {
		h.t.Fatalf("dead = %q, want one entry", dead)
	}
	e, err := deadletter.Decode(dead[0]) // strictly: commit.lua writes what the format has
	if err != nil {
		h.t.Fatal(err)
	}
	return *e
}

// runCommit runs commit.lua once on items, laid out as commitBatch does, and
// returns each item's reply.
func (h *harness) runCommit(ctx context.Context, items ...*item) ([][]any, error) {
	calls := h.w.commitCalls(items, fixedNow, false)
	if len(calls) != 1 {
		h.t.Fatalf("%d calls for %d items, want 1", len(calls), len(items))
	}
	values, err := h.runCall(ctx, &calls[0]).Slice()
	if err != nil {
		return nil, err
	}
	parsed, err := parseReplies(values, len(items))
	if err != nil {
		h.t.Fatal(err)
	}
	replies := make([][]any, len(items))
	for i, r := range parsed {
		replies[i] = []any{r.code, r.n, r.deduped, r.detail}
	}
	return replies, nil
}

// commitOne runs commit.lua on it alone and returns its reply.
func (h *harness) commitOne(ctx context.Context, it *item) ([]any, error) {
	replies, err := h.runCommit(ctx, it)
	if err != nil {
		return nil, err
	}
	return replies[0], nil
}

// runCall sends c as commitBatch does, loading the script on NOSCRIPT.
func (h *harness) runCall(ctx context.Context, c *commitCall) *redis.Cmd {
	return script.Do(ctx, commitScript, h.w.opts.Dialect, h.rdb, func() *redis.Cmd {
		cmd := c.command(ctx, h.w.opts.Dialect)
		_ = h.rdb.Process(ctx, cmd)
		return cmd
	})
}
