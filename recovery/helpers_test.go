package recovery

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/internal/testutil"
)

// t0 is the start of the injected clock of the tests.
var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// ms is t0 plus d in Unix ms.
func ms(d time.Duration) int64 { return t0.Add(d).UnixMilli() }

// at is the score in a schedule of an event due at t0 plus d.
func at(d time.Duration) float64 { return float64(ms(d)) }

// clock is an injected clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeLive is a Liveness of a fixed set of live replicas; it counts calls.
type fakeLive struct {
	mu    sync.Mutex
	alive map[string]bool
	calls int
}

func newFakeLive(alive ...string) *fakeLive {
	f := &fakeLive{alive: map[string]bool{}}
	for _, id := range alive {
		f.alive[id] = true
	}
	return f
}

func (f *fakeLive) Alive(_ context.Context, ids []string) ([]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	out := make([]bool, len(ids))
	for i, id := range ids {
		out[i] = f.alive[id]
	}
	return out, nil
}

func (f *fakeLive) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// env is a redis-server, a client and a recoverer of input queue "in"
// (taken queue "in/taken") with the test clock and prefix "p:".
type env struct {
	t    *testing.T
	srv  *redistest.Server
	rdb  *redis.Client
	clk  *clock
	live *fakeLive
	logs *testutil.Buffer
	r    *Recoverer
}

func newEnv(t *testing.T, s Settings, watched []Watched, live *fakeLive) *env {
	t.Helper()
	srv := redistest.Start(t)
	e := &env{t: t, srv: srv, rdb: srv.Client(), clk: newClock(), live: live, logs: &testutil.Buffer{}}
	if watched == nil {
		watched = []Watched{{InputQueue: "in", TakenQueue: "in/taken"}}
	}
	if s.Prefix == "" {
		s.Prefix = "p:"
	}
	if s.Now == nil {
		s.Now = e.clk.Now
	}
	if e.live == nil {
		e.live = newFakeLive()
	}
	d, err := script.Detect(context.Background(), e.rdb)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.r = New(e.rdb, watched, e.live, Options{Settings: s, Dialect: d, Logger: log})
	return e
}

// Redis contents, by key, for "before" and "after" tables.
type (
	list = redistest.List // head first
	zset = redistest.ZSet // member -> score
	hash = redistest.Hash // field -> value
	db   = redistest.Data // key -> list, zset, hash or string
)

func (e *env) load(d db) {
	e.t.Helper()
	redistest.Load(e.t, e.rdb, d)
}

// dump reads every key of the server. JSON objects in lists are written
// back with sorted keys so that they compare whatever order cjson chose.
func (e *env) dump() db {
	e.t.Helper()
	d := redistest.Dump(e.t, e.rdb, "*")
	for _, v := range d {
		if l, ok := v.(list); ok {
			for i, s := range l {
				l[i] = canonicalJSON(s)
			}
		}
	}
	return d
}

func canonicalJSON(s string) string {
	var m map[string]any
	if len(s) == 0 || s[0] != '{' || json.Unmarshal([]byte(s), &m) != nil {
		return s
	}
	b, _ := json.Marshal(m) // map keys sorted
	return string(b)
}

// deadJSON is a dead-letter entry as dump shows it.
func deadJSON(event, queue, replica string, count int, at time.Time) string {
	m := map[string]any{
		"event": event, "queue": queue, "replica": replica, "count": count,
		"reason": "replayed " + strconv.Itoa(count) + " times: it may crash replicas (poison event)",
		"time":   at.UTC().Format(time.RFC3339),
	}
	if !utf8.ValidString(event) {
		m["event_base64"] = base64.StdEncoding.EncodeToString([]byte(event))
	}
	b, _ := json.Marshal(m)
	return canonicalJSON(string(b))
}

// sorted returns a sorted copy of ss.
func sorted(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}
