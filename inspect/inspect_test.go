package inspect

import (
	"errors"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/redistest"
)

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.LoadBytes("c.hjson", []byte(`{watchers: [
		{input_queue: "in", rules: [{on: "^a", make: {queue: "q"}}]},
		{input_queue: "in/taken/other", rules: [{on: "^a", make: {queue: "q"}}]}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestStatusQueues: lengths of every queue, the taken lists found (not
// the other watcher's input queue, which is named like one), orphans, and
// a key of the wrong type reported as a problem, not an error.
func TestStatusQueues(t *testing.T) {
	rdb := redistest.Start(t).Client()
	redistest.Load(t, rdb, redistest.Data{
		"in":                  redistest.List{"e1", "e2", "e3"},
		"in/taken/r1":         redistest.List{"e4"},
		"in/taken/other":      redistest.List{"x"},
		"in/dead":             redistest.List{"d1", "d2"},
		"resc:delayed:in":     redistest.ZSet{"m": 1},
		"in/taken/other/dead": "not a list",
	})
	st, err := New(rdb, testConfig(t), Options{}).Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != nil || len(st.Replicas) != 0 || st.Prefix != "resc:" {
		t.Errorf("leader %v, replicas %v, prefix %q: want none, none, resc:", st.Leader, st.Replicas, st.Prefix)
	}
	if len(st.Watchers) != 2 {
		t.Fatalf("%d watchers, want 2", len(st.Watchers))
	}
	w := st.Watchers[0]
	if *w.Input != 3 || *w.Dead != 2 || w.Taken != 1 || !slices.Equal(w.TakenLists, []TakenList{{List: "in/taken/r1", Replica: "r1", Length: 1, Orphan: true}}) {
		t.Errorf("watcher in = input %d dead %d taken %d %+v", *w.Input, *w.Dead, w.Taken, w.TakenLists)
	}
	if w.Delayed == nil {
		t.Error("delayed: nil")
	}
	if o := st.Watchers[1]; *o.Input != 1 || o.Dead != nil || len(o.TakenLists) != 0 {
		t.Errorf("watcher in/taken/other = %+v", o)
	}
	if len(st.Problems) != 1 {
		t.Errorf("problems %q, want one (the dead-letter list of the wrong type)", st.Problems)
	}
}

func deadEntry(t *testing.T, event string) string {
	t.Helper()
	s := `{"event":"` + event + `","queue":"in","reason":"r","replica":"r1","time":"2026-11-23T10:58:47Z"}`
	if _, ok := deadletter.Parse(s); !ok {
		t.Fatalf("not a dead-letter entry: %s", s)
	}
	return s
}

func TestSelectApply(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := t.Context()
	// LPUSH order: the oldest (position 1) is at the tail.
	for _, s := range []string{deadEntry(t, "acq/1"), "by hand", deadEntry(t, "acq/2"), deadEntry(t, "other/3")} {
		if err := rdb.LPush(ctx, "in/dead", s).Err(); err != nil {
			t.Fatal(err)
		}
	}
	in := New(rdb, testConfig(t), Options{Now: func() time.Time { return time.Unix(0, 0) }})
	events := func(recs []deadletter.Record) []string {
		var evs []string
		for _, r := range recs {
			evs = append(evs, r.Event())
		}
		return evs
	}
	for _, tt := range []struct {
		sel  Selection
		want []string
	}{
		{Selection{Positions: []int64{3, 1, 3}}, []string{"acq/1", "acq/2"}},
		{Selection{All: true}, []string{"acq/1", "by hand", "acq/2", "other/3"}},
		{Selection{Match: regexp.MustCompile(`^acq/`)}, []string{"acq/1", "acq/2"}},
	} {
		recs, err := in.Select(ctx, "in", tt.sel)
		if err != nil || !slices.Equal(events(recs), tt.want) {
			t.Errorf("Select(%+v) = %q, %v; want %q", tt.sel, events(recs), err, tt.want)
		}
	}
	var ne *NoEntryError
	if _, err := in.Select(ctx, "in", Selection{Positions: []int64{5}}); !errors.As(err, &ne) || ne.Length != 4 {
		t.Errorf("position 5 of 4: %v, want a NoEntryError", err)
	}
	if _, err := in.Select(ctx, "in", Selection{All: true, Positions: []int64{1}}); err == nil {
		t.Error("two selections at once: no error")
	}
	if _, err := in.Select(ctx, "nope", Selection{All: true}); !errors.Is(err, ErrNoWatcher) {
		t.Errorf("unknown queue: %v, want ErrNoWatcher", err)
	}

	all, err := in.Select(ctx, "in", Selection{All: true})
	if err != nil {
		t.Fatal(err)
	}
	var results []Result
	record := func(_ deadletter.Record, r Result) { results = append(results, r) }
	c, err := in.Apply(ctx, Requeue, "in", all, ApplyOptions{DryRun: true}, record)
	if err != nil || c != (Counts{Done: 3, Skipped: 1}) || !slices.Equal(results, []Result{WouldDo, SkippedNotEntry, WouldDo, WouldDo}) {
		t.Errorf("dry run: %+v %v %v", c, results, err)
	}
	if n := rdb.LLen(ctx, "in/dead").Val(); n != 4 {
		t.Errorf("dry run wrote: %d entries left", n)
	}
	results = nil
	c, err = in.Apply(ctx, Requeue, "in", all[:2], ApplyOptions{}, record)
	if err != nil || c != (Counts{Done: 1, Skipped: 1}) || !slices.Equal(results, []Result{Done, SkippedNotEntry}) {
		t.Errorf("requeue: %+v %v %v", c, results, err)
	}
	if got := rdb.LRange(ctx, "in", 0, -1).Val(); !slices.Equal(got, []string{"acq/1"}) {
		t.Errorf("input queue %q, want [acq/1]", got)
	}
	results = nil
	c, err = in.Apply(ctx, Drop, "in", all, ApplyOptions{}, record)
	if err != nil || c != (Counts{Done: 3, Skipped: 1}) || !slices.Equal(results, []Result{SkippedGone, Done, Done, Done}) {
		t.Errorf("drop: %+v %v %v", c, results, err)
	}
	if n := rdb.LLen(ctx, "in/dead").Val(); n != 0 {
		t.Errorf("%d entries left after dropping all", n)
	}
}
