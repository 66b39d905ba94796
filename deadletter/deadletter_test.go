package deadletter

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/script"
)

const dead = "in/dead"

// Entries of the tests, as package watcher and recovery write them.
const (
	e1  = `{"event":"e1","queue":"in","reason":"rule \"r\": fetch GET http://svc/1: status 404","replica":"r1","time":"2026-11-23T10:58:47Z"}`
	e2  = `{"count":3,"event":"e2","queue":"in","reason":"replayed 3 times: it may crash replicas (poison event)","replica":"r2","time":"2026-11-23T10:59:00Z"}`
	bin = `{"event":"bin/\ufffd\ufffd","event_base64":"YmluL//+","queue":"in","reason":"r","replica":"r2","time":"2026-11-23T10:58:47Z"}`
)

// Redis contents for "before" and "after" tables: a list (head first) or
// a string.
type (
	list = redistest.List
	db   = redistest.Data
)

type env struct {
	t   *testing.T
	rdb *redis.Client
	d   script.Dialect
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rdb := redistest.Start(t).Client()
	d, err := script.Detect(context.Background(), rdb)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, rdb: rdb, d: d}
}

// load writes d to the server, started for this test alone.
func (e *env) load(d db) {
	e.t.Helper()
	redistest.Load(e.t, e.rdb, d)
}

// dump reads every key of the server.
func (e *env) dump() db {
	e.t.Helper()
	return redistest.Dump(e.t, e.rdb, "*")
}

func TestScriptLoads(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if e.d.Legacy {
		t.Fatalf("redis-server 7 reported as legacy: %v", e.d)
	}
	if err := requeueScript.Load(ctx, e.d, e.rdb); err != nil {
		t.Fatalf("requeue.lua does not load: %v", err)
	}
	ok, err := e.rdb.ScriptExists(ctx, requeueScript.Hash(e.d)).Result()
	if err != nil || !ok[0] {
		t.Fatalf("requeue.lua not known by its hash %s: %v %v", requeueScript.Hash(e.d), ok, err)
	}
}

// TestRequeueScriptBadArgument: a mode the script does not know, or 'drop'
// without an event set aside, replies the bad-argument code and writes
// nothing.
func TestRequeueScriptBadArgument(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.rdb.RPush(ctx, "in/dead", "e").Err(); err != nil {
		t.Fatal(err)
	}
	before := e.dump()
	for _, args := range [][]any{{"e", "e", "", "move"}, {"e", "e", "", "drop"}} {
		got, err := requeueScript.Run(ctx, e.d, e.rdb, []string{"in/dead", "in"}, args...).Int64Slice()
		if err != nil || !reflect.DeepEqual(got, []int64{5}) {
			t.Errorf("%v: %v, %v; want [5]", args, got, err)
		}
	}
	if after := e.dump(); !reflect.DeepEqual(after, before) {
		t.Errorf("a refusal wrote: %v, was %v", after, before)
	}
}

// TestRequeueScript runs requeue.lua's branches through Requeue: Redis
// before, call, Redis after, on input queue "in" with prefix "p:".
func TestRequeueScript(t *testing.T) {
	tests := []struct {
		name          string
		before        db
		stored, event string
		err           error
		after         db // nil: same as before
	}{
		{
			name:   "requeued bare, to the producers' end",
			before: db{dead: list{e2, e1}, "in": list{"x"}},
			stored: e1, event: "e1",
			after: db{dead: list{e2}, "in": list{"e1", "x"}},
		},
		{
			name:   "exact bytes of a binary event",
			before: db{dead: list{bin}},
			stored: bin, event: "bin/\xff\xfe",
			after: db{"in": list{"bin/\xff\xfe"}},
		},
		{
			name:   "one copy of identical entries",
			before: db{dead: list{e1, e2, e1}},
			stored: e1, event: "e1",
			after: db{dead: list{e1, e2}, "in": list{"e1"}},
		},
		{
			name:   "entry gone: nothing written",
			before: db{dead: list{e2}},
			stored: e1, event: "e1",
			err: ErrGone,
		},
		{
			name:   "no dead-letter list: gone",
			before: db{"in": list{"x"}},
			stored: e1, event: "e1",
			err: ErrGone,
		},
		{
			name:   "the input queue is not a list: nothing written",
			before: db{dead: list{e1}, "in": "a string"},
			stored: e1, event: "e1",
			err: ErrInputType,
		},
		{
			name:   "the dead-letter list is not a list: nothing written",
			before: db{dead: "a string"},
			stored: e1, event: "e1",
			err: ErrDeadType,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.load(tt.before)
			err := Requeue(context.Background(), e.d, e.rdb, "in", tt.stored, tt.event)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Requeue: %v, want %v", err, tt.err)
			}
			want := tt.after
			if want == nil {
				want = tt.before
			}
			if got := e.dump(); !reflect.DeepEqual(got, want) {
				t.Errorf("after:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestRequeueOnce: however many callers requeue one entry at the same
// time, its event is pushed once.
func TestRequeueOnce(t *testing.T) {
	e := newEnv(t)
	e.load(db{dead: list{e1}})
	const callers = 8
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() { errs <- Requeue(context.Background(), e.d, e.rdb, "in", e1, "e1") })
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrGone):
			t.Errorf("Requeue: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d callers requeued the entry, want 1", ok)
	}
	if got, want := e.dump(), (db{"in": list{"e1"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("after: %q, want %q", got, want)
	}
}

// TestRequeueLegacyDialect runs the script without its #!lua line, on a
// server that does not know it (miniredis, the embedded server).
func TestRequeueLegacyDialect(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	d, err := script.Detect(ctx, rdb)
	if err != nil || !d.Legacy {
		t.Fatalf("Detect on miniredis: %v, %v; want legacy", d, err)
	}
	if err := rdb.RPush(ctx, dead, e1).Err(); err != nil {
		t.Fatal(err)
	}
	if err := Requeue(ctx, d, rdb, "in", e1, "e1"); err != nil {
		t.Fatal(err)
	}
	if got := rdb.LRange(ctx, "in", 0, -1).Val(); !reflect.DeepEqual(got, []string{"e1"}) {
		t.Errorf("in = %q, want [e1]", got)
	}
	if n := rdb.Exists(ctx, dead).Val(); n != 0 {
		t.Errorf("the dead-letter list still exists")
	}
}

func TestDrop(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.load(db{dead: list{e1, e2, e1}, "str/dead": "a string"})
	if err := Drop(ctx, e.d, e.rdb, "in", e1); err != nil {
		t.Fatal(err)
	}
	if got, want := e.dump(), (db{dead: list{e1, e2}, "str/dead": "a string"}); !reflect.DeepEqual(got, want) {
		t.Errorf("after the first drop: %q, want %q", got, want)
	}
	if err := Drop(ctx, e.d, e.rdb, "in", e1); err != nil {
		t.Fatal(err)
	}
	if err := Drop(ctx, e.d, e.rdb, "in", e1); !errors.Is(err, ErrGone) {
		t.Errorf("third drop: %v, want ErrGone", err)
	}
	if got, want := e.dump(), (db{dead: list{e2}, "str/dead": "a string"}); !reflect.DeepEqual(got, want) {
		t.Errorf("after the drops: %q, want %q", got, want)
	}
	if err := Drop(ctx, e.d, e.rdb, "str", e1); !errors.Is(err, ErrDeadType) {
		t.Errorf("drop from a string: %v, want ErrDeadType", err)
	}
}

func TestParse(t *testing.T) {
	three := 3
	tests := []struct {
		stored string
		want   *Entry // nil: not an entry
		event  string // Record.Event
	}{
		{e1, &Entry{Event: "e1", Queue: "in", Reason: `rule "r": fetch GET http://svc/1: status 404`, Replica: "r1", Time: "2026-11-23T10:58:47Z"}, "e1"},
		{e2, &Entry{Event: "e2", Queue: "in", Reason: "replayed 3 times: it may crash replicas (poison event)", Replica: "r2", Time: "2026-11-23T10:59:00Z", Count: &three}, "e2"},
		{bin, &Entry{Event: "bin/\ufffd\ufffd", EventBase64: "YmluL//+", Queue: "in", Reason: "r", Replica: "r2", Time: "2026-11-23T10:58:47Z"}, "bin/\xff\xfe"},
		// cjson (recovery's entries) escapes '/'; unknown fields are kept out.
		{`{"event":"a\/b","queue":"in","later":true}`, &Entry{Event: "a/b", Queue: "in"}, "a/b"},
		{`{"event":""}`, &Entry{}, ""},
		{"acq/1", nil, "acq/1"},
		{`"acq/1"`, nil, `"acq/1"`},
		{`{"queue":"in"}`, nil, `{"queue":"in"}`},
		{`{"event":3}`, nil, `{"event":3}`},
		{`{"event":null}`, nil, `{"event":null}`},
		{`{"event":"e","count":"x"}`, nil, `{"event":"e","count":"x"}`},
		{`{"event":"e","event_base64":"%%"}`, nil, `{"event":"e","event_base64":"%%"}`},
		{`[{"event":"e"}]`, nil, `[{"event":"e"}]`},
		{`null`, nil, `null`},
		{"\xff{", nil, "\xff{"},
	}
	for _, tt := range tests {
		got, ok := Parse(tt.stored)
		if ok != (tt.want != nil) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.stored, got, ok, tt.want)
		}
		if ev := (Record{Stored: tt.stored, Entry: got}).Event(); ev != tt.event {
			t.Errorf("Parse(%q): Event() = %q, want %q", tt.stored, ev, tt.event)
		}
	}
}

func TestRead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.load(db{dead: list{"raw", e2, e1}, "str/dead": "a string"}) // newest first
	n, recs, err := Read(ctx, e.rdb, "in", 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || len(recs) != 3 {
		t.Fatalf("Read: length %d, %d records; want 3, 3", n, len(recs))
	}
	for i, want := range []struct {
		pos    int64
		stored string
		entry  bool
	}{{1, e1, true}, {2, e2, true}, {3, "raw", false}} {
		r := recs[i]
		if r.Position != want.pos || r.Stored != want.stored || (r.Entry != nil) != want.entry {
			t.Errorf("record %d = #%d %q (entry %v), want #%d %q (entry %v)", i, r.Position, r.Stored, r.Entry != nil, want.pos, want.stored, want.entry)
		}
	}

	// The newest two, with the positions of the whole list.
	n, recs, err = Read(ctx, e.rdb, "in", 2)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || len(recs) != 2 || recs[0].Position != 2 || recs[0].Stored != e2 || recs[1].Position != 3 || recs[1].Stored != "raw" {
		t.Errorf("Read limit 2: length %d, records %+v; want 3 and #2, #3", n, recs)
	}

	if n, recs, err := Read(ctx, e.rdb, "other", 0); err != nil || n != 0 || len(recs) != 0 {
		t.Errorf("Read of a missing list: %d, %v, %v; want 0, none, nil", n, recs, err)
	}
	if _, _, err := Read(ctx, e.rdb, "str", 0); !errors.Is(err, ErrDeadType) {
		t.Errorf("Read of a string: %v, want ErrDeadType", err)
	}
}

// TestSetAsideEntry: the entry of an event set aside for its size is
// requeued from its hash field (deleted in the same step) and dropped with
// the field; a field gone refuses the requeue and writes nothing.
func TestSetAsideEntry(t *testing.T) {
	const store = "p:oversized:in"
	big := strings.Repeat("x", 1000) + "\xff"
	entry := func(field string) string {
		e := NewEntry(big[:200], "in", "too big", "r1", time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), 0)
		e.EventBytes, e.EventKey, e.EventField = int64(len(big)), store, field
		return e.JSON()
	}
	a, b, c := entry("a"), entry("b"), entry("c")
	e := newEnv(t)
	ctx := context.Background()
	e.load(db{dead: list{a, b, c}, store: redistest.Hash{"a": big, "b": big}, "in": list{"x"}})

	if err := Requeue(ctx, e.d, e.rdb, "in", a, "not this"); err != nil {
		t.Fatal(err)
	}
	if err := Requeue(ctx, e.d, e.rdb, "in", a, "not this"); !errors.Is(err, ErrGone) {
		t.Errorf("second requeue: %v, want ErrGone", err)
	}
	if err := Drop(ctx, e.d, e.rdb, "in", b); err != nil {
		t.Fatal(err)
	}
	if err := Requeue(ctx, e.d, e.rdb, "in", c, ""); !errors.Is(err, ErrAsideGone) {
		t.Errorf("requeue of an entry whose field is gone: %v, want ErrAsideGone", err)
	}
	if got, want := e.dump(), (db{dead: list{c}, "in": list{big, "x"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("after: %q, want %q", got, want)
	}
	if err := Drop(ctx, e.d, e.rdb, "in", c); err != nil {
		t.Fatal(err)
	}
	e.rdb.Set(ctx, "str", "x", 0)
	e.load(db{dead: list{a}})
	if err := Requeue(ctx, e.d, e.rdb, "in", strings.Replace(a, store, "str", 1), ""); !errors.Is(err, ErrAsideType) {
		t.Errorf("requeue from a string: %v, want ErrAsideType", err)
	}
}
