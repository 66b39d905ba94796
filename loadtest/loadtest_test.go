package loadtest

import (
	"context"
	"fmt"
	"go/build"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resc-go/resc/internal/redistest"
)

// rescBin is the resc binary built once by TestMain, with the generator's
// own build function.
var rescBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "resc-load-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if rescBin, err = buildResc(ctx, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// tiny returns the options of a small, fast run.
func tiny(t *testing.T, mode string) Options {
	return Options{
		Mode: mode, Resc: rescBin, Warmup: 100, RSSInterval: 100 * time.Millisecond,
		StallTimeout: 20 * time.Second, Log: testLog{t},
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestThroughputOnSharedServer runs the throughput mode without a set
// (duplicates visible), with the baseline, against a server it did not
// start: the run leaves the key it found and deletes all of its own.
func TestThroughputOnSharedServer(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := t.Context()
	if err := rdb.Set(ctx, "someone-elses", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	o := tiny(t, ModeThroughput)
	o.Events, o.BaselineEvents, o.NoSet, o.RedisURL, o.Replicas = 2000, 300, true, srv.URL(), 2
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Log("\n" + b.String())
	if rep.Events != 2000 || rep.EventsPerSec <= 0 || rep.Seconds <= 0 {
		t.Errorf("events %d in %v s = %v/s, want 2000 in some time", rep.Events, rep.Seconds, rep.EventsPerSec)
	}
	if c := rep.Check; !c.OK || c.Tasks != 2000 || !c.Duplicates {
		t.Errorf("check %+v, want ok with 2000 tasks and duplicates visible", c)
	}
	if rep.Baseline == nil || rep.Baseline.Events != 300 || rep.Baseline.EventsPerSec <= 0 || rep.Ratio <= 0 {
		t.Errorf("baseline %+v ratio %v, want 300 events measured and a ratio", rep.Baseline, rep.Ratio)
	}
	if len(rep.Memory) != 2 || rep.Memory[0].Name != "lt-1" || rep.Memory[1].Peak <= 0 {
		t.Errorf("memory %+v, want lt-1 and lt-2 with a peak", rep.Memory)
	}
	if rep.Machine.RedisPrivate || rep.Machine.Redis == "" {
		t.Errorf("machine %+v, want the given server's version", rep.Machine)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"someone-elses"}) {
		t.Errorf("keys after the run: %q, want only the one that was there", keys)
	}
}

// TestLatencyModes runs the rate and idle modes on a private server, with
// the pop and the listener observers.
func TestLatencyModes(t *testing.T) {
	for _, tc := range []struct {
		mode, observe string
	}{
		{ModeRate, "pop"},
		{ModeIdle, "listener"},
	} {
		t.Run(tc.mode+"/"+tc.observe, func(t *testing.T) {
			o := tiny(t, tc.mode)
			o.Observe = tc.observe
			o.Rate, o.Duration, o.Events, o.Gap, o.BaselineEvents = 2000, 500*time.Millisecond, 20, time.Millisecond, 20
			rep, err := Run(t.Context(), o)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			var b strings.Builder
			rep.WriteText(&b)
			t.Log("\n" + b.String())
			want := 20
			if tc.mode == ModeRate {
				want = 1000
			}
			if rep.Events != want || rep.Latency == nil || rep.Latency.Count != uint64(want) || rep.Latency.P50 <= 0 || rep.Latency.Max < rep.Latency.P99 {
				t.Errorf("events %d, latency %+v, want %d latencies", rep.Events, rep.Latency, want)
			}
			if !rep.Check.OK || rep.Check.Tasks != want || rep.Check.Duplicates {
				t.Errorf("check %+v", rep.Check)
			}
			if !rep.Machine.RedisPrivate || len(rep.Memory) != 2 || rep.Memory[1].Name != "redis-server" {
				t.Errorf("machine %+v memory %+v, want a private server sampled too", rep.Machine, rep.Memory)
			}
			if tc.mode == ModeIdle && (rep.Baseline.Latency == nil || rep.RatioOf == "") {
				t.Errorf("baseline %+v, want the baseline's idle latency", rep.Baseline)
			}
		})
	}
}

// TestFetchMode runs the fetch rule against the built-in HTTP service.
func TestFetchMode(t *testing.T) {
	o := tiny(t, ModeThroughput)
	o.Events, o.FetchDelay, o.BaselineEvents, o.NoSet = 500, 2*time.Millisecond, 20, true
	rep, err := Run(t.Context(), o)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if !rep.Check.OK || rep.Check.Tasks != 500 || rep.FetchDelayMS != 2 || rep.Baseline.Events != 20 {
		t.Errorf("check %+v fetch %v baseline %+v", rep.Check, rep.FetchDelayMS, rep.Baseline)
	}
}

// TestCheckerFinds feeds the checker a task queue with a duplicated
// task, a missing one and a stranger, and events left behind: it must
// fail and say which.
func TestCheckerFinds(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := t.Context()
	k := newKeys("lt/t/")
	for seq := range 10 {
		if seq == 3 {
			continue // missing
		}
		rdb.LPush(ctx, k.tasks, fmt.Sprintf("trt/%d/1", seq))
	}
	rdb.LPush(ctx, k.tasks, "trt/5/1", "trt/x/1", "trt/12/1")
	rdb.LPush(ctx, k.input, "acq/10/1")
	rdb.LPush(ctx, k.taken+"/lt-1", "acq/11/1")
	rdb.LPush(ctx, k.deadList(), `{"event":"acq/12/1"}`)

	c, err := check(ctx, rdb, k, newTally(10), k.tasks)
	if err != nil {
		t.Fatal(err)
	}
	if c.OK || c.Missing != 1 || !slices.Equal(c.MissingSeqs, []int{3}) || c.Duplicated != 1 || !slices.Equal(c.DuplicatedSeqs, []int{5}) {
		t.Errorf("check %+v, want seq 3 missing and seq 5 twice", c)
	}
	if !slices.Equal(c.Unexpected, []string{"trt/12/1", "trt/x/1"}) && !slices.Equal(c.Unexpected, []string{"trt/x/1", "trt/12/1"}) {
		t.Errorf("unexpected %q", c.Unexpected)
	}
	wantLeft := map[string]int64{k.input: 1, k.taken + "/lt-1": 1, k.deadList(): 1}
	if len(c.Left) != len(wantLeft) {
		t.Errorf("left %v, want %v", c.Left, wantLeft)
	}
	for key, n := range wantLeft {
		if c.Left[key] != n {
			t.Errorf("left %v, want %v", c.Left, wantLeft)
		}
	}
	s := c.String()
	for _, want := range []string{"FAILED", "1 missing (seq 3)", "1 duplicated (seq 5)", "left in lt/t/in"} {
		if !strings.Contains(s, want) {
			t.Errorf("verdict %q lacks %q", s, want)
		}
	}

	// The same queue without the faults passes, counting tasks an
	// observer popped before.
	rdb.Del(ctx, k.tasks, k.input, k.taken+"/lt-1", k.deadList())
	tl := newTally(10)
	tl.add("trt/0/1")
	for seq := 1; seq < 10; seq++ {
		rdb.LPush(ctx, k.tasks, fmt.Sprintf("trt/%d/1/ok", seq))
	}
	c, err = check(ctx, rdb, k, tl, k.tasks)
	if err != nil {
		t.Fatal(err)
	}
	c.Duplicates = true
	if !c.OK || c.Tasks != 10 || !strings.HasPrefix(c.String(), "ok: 10 events, 10 tasks, each event's task exactly once") {
		t.Errorf("check %+v: %s", c, c)
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 100000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		got := h.quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d < 0 || d > 1.0/64 {
			t.Errorf("quantile %v = %v, want %v within +1/64", tc.q, got, tc.want)
		}
	}
	s := h.summary()
	if s.Count != 100000 || s.Max != 100 || s.Mean < 50 || s.Mean > 50.01 {
		t.Errorf("summary %+v", s)
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		if b := bucket(v); bucketHigh(b) < v || (b > 0 && bucketHigh(b-1) >= v) {
			t.Fatalf("value %d in bucket %d [%d, %d]", v, b, bucketHigh(b-1)+1, bucketHigh(b))
		}
	}
}

func TestParseTask(t *testing.T) {
	for _, tc := range []struct {
		in    string
		seq   int
		stamp int64
		ok    bool
	}{
		{"trt/12/1700000000000000000", 12, 1700000000000000000, true},
		{"trt/0/5/ok", 0, 5, true},
		{"acq/7/9", 7, 9, true},
		{"trt/x/5", 0, 0, false},
		{"trt/5", 0, 0, false},
		{"trt/-1/5", 0, 0, false},
		{"trt/1/", 0, 0, false},
	} {
		seq, stamp, ok := parseTask(tc.in)
		if seq != tc.seq || stamp != tc.stamp || ok != tc.ok {
			t.Errorf("parseTask(%q) = %d, %d, %v; want %d, %d, %v", tc.in, seq, stamp, ok, tc.seq, tc.stamp, tc.ok)
		}
	}
}

// TestK6 runs the k6 mode when k6 is installed, on PATH or where go
// install puts it (docs/loadtest.md).
func TestK6(t *testing.T) {
	k6, err := exec.LookPath("k6")
	if err != nil { // where go install puts it
		k6 = filepath.Join(build.Default.GOPATH, "bin", "k6")
		if _, err := os.Stat(k6); err != nil {
			t.Skip("k6 is not installed (make loadtest LOADTEST_K6=install installs it)")
		}
	}
	o := tiny(t, ModeK6)
	o.K6, o.K6Script, o.Rate, o.Duration, o.NoSet, o.NoBaseline = k6, filepath.Join("k6", "push.js"), 500, time.Second, true, true
	rep, err := Run(t.Context(), o)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	// How many k6 pushes in its second depends on the machine's load: the
	// test checks that what it pushed was handled exactly once.
	if rep.K6 == nil || rep.K6.Pushed == 0 || !rep.Check.OK || rep.Check.Events != rep.K6.Pushed {
		t.Errorf("k6 %+v check %+v", rep.K6, rep.Check)
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []Options{
		{Mode: "soak"},
		{Replicas: -1},
		{Observe: "peek"},
		{Feed: "trickle"},
		{Mode: ModeRate, Rate: -5},
	} {
		if _, err := Run(t.Context(), o); err == nil {
			t.Errorf("Run(%+v) accepted", o)
		}
	}
}

// TestListenerIgnoresEarlierEvents: a listener observer does not count the
// message of an event pushed before it started (a warm-up event whose
// PUBLISH comes late, as resc's algorithm sends it after the LPUSH the
// warm-up waited for): it would end the measurement one event early.
func TestListenerIgnoresEarlierEvents(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	clk := newClock()
	early := clk.now()
	sub := srv.Client()
	s, err := subscribe(ctx, sub, "ch")
	if err != nil {
		t.Fatal(err)
	}
	o := newObserver(clk, 1, nil)
	go o.listen(ctx, s)
	late := clk.now()
	for _, msg := range []string{
		fmt.Sprintf("in/taken TRIGGER e -> trt/5/%d", early),
		fmt.Sprintf("in/taken TRIGGER e -> trt/0/%d", late),
	} {
		if err := rdb.Publish(ctx, "ch", msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.wait(); err != nil {
		t.Fatal(err)
	}
	if got := <-o.notify; got != 0 {
		t.Errorf("the observer counted event %d, want 0 (event 5 was pushed before it started)", got)
	}
}

// TestAwaitLastEvent: the task of the last event is reported and the
// observer ends at the same moment; waiting for that event must see the
// report whichever of the two it notices first. One round would catch a
// wrong order half of the time: 200 rounds catch it always but once in
// 2^200.
func TestAwaitLastEvent(t *testing.T) {
	r := &runner{o: Options{StallTimeout: 10 * time.Second}, clk: newClock()}
	tg := &target{name: "resc-go", alive: func() error { return nil }}
	for round := range 200 {
		o := newObserver(r.clk, 1, nil)
		o.record(fmt.Sprintf("trt/0/%d", r.clk.now()), r.clk.now())
		close(o.done)
		if err := r.awaitSeq(context.Background(), tg, o, 0); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	// An observer that ended without the event is still an error.
	o := newObserver(r.clk, 1, nil)
	o.record(fmt.Sprintf("trt/3/%d", r.clk.now()), r.clk.now())
	close(o.done)
	if err := r.awaitSeq(context.Background(), tg, o, 4); err == nil {
		t.Fatal("awaitSeq accepted an observer that ended without event 4's task")
	}
}

// TestClusterRun: --cluster 2 starts two masters, puts one watcher on
// each, splits the events between them and reports each master's load:
// every task once, each master's events and CPU time, the shared keys on
// exactly one master, and the ceiling derived from the CPU time.
func TestClusterRun(t *testing.T) {
	rep, err := RunCluster(t.Context(), ClusterOptions{Masters: 2, Events: 3000, Replicas: 2, Warmup: 100,
		Resc: rescBin, StallTimeout: 20 * time.Second, Log: testLog{t}})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Log("\n" + b.String())
	if c := rep.Check; !c.OK || c.Tasks != 3000 {
		t.Errorf("check %+v, want ok with 3000 tasks", c)
	}
	if len(rep.PerMaster) != 2 {
		t.Fatalf("%d masters reported, want 2", len(rep.PerMaster))
	}
	shared := 0
	for _, m := range rep.PerMaster {
		if m.Watchers != 1 || m.Events != 1500 || m.CPUSec <= 0 || m.CPUPerEvent <= 0 {
			t.Errorf("master %+v, want 1 watcher, 1500 events and some CPU", m)
		}
		if i := slices.IndexFunc(m.Commands, func(c CommandLoad) bool { return c.Name == "evalsha" }); i < 0 || m.Commands[i].Calls == 0 {
			t.Errorf("master %s: no EVALSHA in its command statistics %+v", m.Addr, m.Commands)
		}
		if m.Shared {
			shared++
		}
	}
	if shared != 1 {
		t.Errorf("%d masters hold the shared keys, want 1", shared)
	}
	if rep.CPUPerEvent <= 0 || math.Abs(rep.Ceiling*rep.CPUPerEvent-1e6) > 1 {
		t.Errorf("cpu %v µs/event, ceiling %v events/s: want ceiling = 10⁶/cpu", rep.CPUPerEvent, rep.Ceiling)
	}
}

// TestClusterOptionsRefused: a cluster run needs 1 to 16 masters and an
// event per master.
func TestClusterOptionsRefused(t *testing.T) {
	for _, o := range []ClusterOptions{{}, {Masters: 17}, {Masters: 3, Events: 2}, {Masters: 1, Replicas: -1}} {
		if _, err := RunCluster(t.Context(), o); err == nil {
			t.Errorf("RunCluster(%+v) accepted", o)
		}
	}
}
