package recovery

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/testutil"
)

// run starts e.r.Run and stops it at the end of the test; the returned
// function cancels the leader context and returns what Run returned.
func (e *env) run() (stop func() error) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if stopped {
			return err
		}
		stopped = true
		cancel()
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			e.t.Fatal("Run did not return within 10 s of its leader context's end")
		}
		return err
	}
	e.t.Cleanup(func() { _ = stop() })
	return stop
}

func (e *env) list(key string) []string {
	return e.rdb.LRange(context.Background(), key, 0, -1).Val()
}

func (e *env) exists(key string) bool {
	return e.rdb.Exists(context.Background(), key).Val() == 1
}

// waitPasses waits until Run has asked Liveness n more times: that many
// more passes found taken lists.
func (e *env) waitPasses(n int) {
	e.t.Helper()
	target := e.live.Calls() + n
	testutil.Eventually(e.t, "leader passes", func() bool { return e.live.Calls() >= target })
}

// TestRunReplaysOrphans: the lists of a dead replica and of a replica that
// never registered are replayed, each in its order, across batches; the
// list of a live replica is left alone.
func TestRunReplaysOrphans(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Settings{ScanInterval: 5 * time.Millisecond, BatchSize: 2, MaxReplays: DefaultMaxReplays}, nil, newFakeLive("alive"))
	e.load(db{
		"in":             list{"queued"},
		"in/taken/dead":  list{"d5", "d4", "d3", "d2", "d1"}, // d1 taken first
		"in/taken/never": list{"n2", "n1"},
		"in/taken/alive": list{"a2", "a1"},
	})
	e.live.mu.Lock()
	e.live.alive["dead"] = false // registered once, expired since
	e.live.mu.Unlock()
	e.run()
	testutil.Eventually(t, "orphan lists replayed", func() bool { return !e.exists("in/taken/dead") && !e.exists("in/taken/never") })
	e.waitPasses(3)

	in := e.list("in")
	if len(in) != 8 || in[0] != "queued" {
		t.Fatalf("input queue %q", in)
	}
	// Read in the order replicas take (from the right), per orphan list.
	var dead, never []string
	for i := len(in) - 1; i >= 1; i-- {
		ev, n := keyspace.Unstamp(in[i])
		if n != 1 {
			t.Errorf("%q replayed with count %d, want 1", in[i], n)
		}
		if strings.HasPrefix(ev, "d") {
			dead = append(dead, ev)
		} else {
			never = append(never, ev)
		}
	}
	if want := []string{"d1", "d2", "d3", "d4", "d5"}; !reflect.DeepEqual(dead, want) {
		t.Errorf("dead replica's events taken in order %q, want %q", dead, want)
	}
	if want := []string{"n1", "n2"}; !reflect.DeepEqual(never, want) {
		t.Errorf("unregistered replica's events taken in order %q, want %q", never, want)
	}
	if got := e.list("in/taken/alive"); !reflect.DeepEqual(got, []string{"a2", "a1"}) {
		t.Errorf("live replica's taken list %q, want untouched", got)
	}
	logs := e.logs.String()
	for _, want := range []string{"replica=dead list=in/taken/dead queue=in events=5 delayed=0 dead_lettered=0", "replica=never list=in/taken/never queue=in events=2"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no log line with %q:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "replayed the taken list"); n != 2 {
		t.Errorf("%d replay log lines, want 2:\n%s", n, logs)
	}
}

// TestRunPoisonEvent follows one event that keeps crashing replicas: the
// 1st replay is immediate, the 2nd waits ReplayDelay, the 3rd twice that,
// and found once more it is dead-lettered. The clock only moves by hand.
func TestRunPoisonEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Settings{ScanInterval: 5 * time.Millisecond, MaxReplays: 3, ReplayDelay: time.Second}, nil, nil)
	ctx := context.Background()
	e.run()
	// crash simulates a replica that takes the event and dies.
	crash := func(replica string) {
		t.Helper()
		testutil.Eventually(t, "poison event in the input queue", func() bool { return len(e.list("in")) == 1 })
		if err := e.rdb.LMove(ctx, "in", "in/taken/"+replica, "RIGHT", "LEFT").Err(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "taken list replayed", func() bool { return !e.exists("in/taken/" + replica) })
	}
	sched := keyspace.DelaySchedule("p:", "in")
	e.load(db{"in/taken/r1": list{"poison"}})
	testutil.Eventually(t, "first replay", func() bool { return !e.exists("in/taken/r1") })

	for i, delay := range []time.Duration{time.Second, 2 * time.Second} {
		crash("r" + string(rune('2'+i)))
		if e.rdb.ZCard(ctx, sched).Val() != 1 || len(e.list("in")) != 0 {
			t.Fatalf("replay %d not delayed: schedule %v, input %q", i+2, e.rdb.ZRange(ctx, sched, 0, -1).Val(), e.list("in"))
		}
		e.clk.Advance(delay - time.Millisecond)
		if n, err := e.r.Promote(ctx); err != nil || n != 0 {
			t.Fatalf("promoted %d (%v) 1 ms before due", n, err)
		}
		e.clk.Advance(time.Millisecond)
		testutil.Eventually(t, "promotion when due", func() bool { return len(e.list("in")) == 1 })
		if e.rdb.ZCard(ctx, sched).Val() != 0 {
			t.Fatal("promoted event still in the schedule")
		}
	}

	crash("r4")
	dead := e.list("in/dead")
	if len(dead) != 1 {
		t.Fatalf("dead-letter list %q, want the poison event", dead)
	}
	var entry struct {
		Event, Queue, Reason, Replica, Time string
		Count                               int
	}
	if err := json.Unmarshal([]byte(dead[0]), &entry); err != nil {
		t.Fatal(err)
	}
	want := entry
	want.Event, want.Queue, want.Replica, want.Count = "poison", "in", "r4", 3
	want.Reason = "replayed 3 times: it may crash replicas (poison event)"
	want.Time = e.clk.Now().UTC().Format(time.RFC3339)
	if entry != want {
		t.Errorf("dead-letter entry %+v, want %+v", entry, want)
	}
	if len(e.list("in")) != 0 || e.rdb.ZCard(ctx, sched).Val() != 0 {
		t.Error("dead-lettered event still in play")
	}
	if !strings.Contains(e.logs.String(), "level=WARN msg=\"replayed the taken list of a dead replica\" component=recovery replica=r4") {
		t.Errorf("dead-lettering not logged as a warning:\n%s", e.logs.String())
	}
}

// TestRunStopsWithLeadership: Run returns nil soon after its leader
// context ends.
func TestRunStopsWithLeadership(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Settings{ScanInterval: time.Hour, MaxReplays: DefaultMaxReplays}, nil, nil)
	e.load(db{"in/taken/r1": list{"e"}})
	stop := e.run()
	testutil.Eventually(t, "first pass", func() bool { return !e.exists("in/taken/r1") })
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
}

// TestRunEscapesGlob: a taken queue full of glob characters matches only
// its own taken lists, not the lists of queues the raw pattern would match,
// nor deeper keys, nor the queues of the configuration.
func TestRunEscapesGlob(t *testing.T) {
	t.Parallel()
	const q = `q[1]*?\x`
	watched := []Watched{{InputQueue: q, TakenQueue: q}, {InputQueue: "other"}}
	e := newEnv(t, Settings{ScanInterval: 5 * time.Millisecond, MaxReplays: DefaultMaxReplays}, watched, newFakeLive("alive"))
	before := db{
		q + "/alive":     list{"a live replica's: keeps Liveness asked every pass"},
		q + "/r1":        list{"mine"},
		"q1ZZx/r1":       list{"not mine: matched by the raw pattern"},
		q + "/r1/deeper": list{"not mine: a replica id has no /"},
		q + "/dead":      list{"dead-letter list of the queue, not a replica 'dead'"},
	}
	e.load(before)
	e.run()
	testutil.Eventually(t, "own list replayed", func() bool { return !e.exists(q + "/r1") })
	e.waitPasses(3)
	after := e.dump()
	delete(before, q+"/r1")
	before[q] = list{keyspace.StampReplays(1, "mine")}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("Redis after:\n got %#v\nwant %#v", after, before)
	}
}

// TestRunSurvivesRedisRestart: Run waits out a Redis outage, logs it once,
// and replays orphans again once Redis is back.
func TestRunSurvivesRedisRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Settings{ScanInterval: 5 * time.Millisecond, MaxReplays: DefaultMaxReplays}, nil, nil)
	e.load(db{"in/taken/r1": list{"before"}})
	e.run()
	testutil.Eventually(t, "replay before the outage", func() bool { return !e.exists("in/taken/r1") })

	e.srv.Stop()
	testutil.Eventually(t, "outage logged", func() bool { return strings.Contains(e.logs.String(), "redis unavailable") })
	e.srv.Restart() // empty dataset, empty script cache
	e.load(db{"in/taken/r2": list{"after"}})
	testutil.Eventually(t, "replay after the outage", func() bool { return !e.exists("in/taken/r2") })
	if got := e.list("in"); !reflect.DeepEqual(got, []string{keyspace.StampReplays(1, "after")}) {
		t.Errorf("input queue %q, want [after] stamped 1", got)
	}
	testutil.Eventually(t, "recovery logged", func() bool { return strings.Contains(e.logs.String(), "redis available again") })
	if n := strings.Count(e.logs.String(), "redis unavailable"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, e.logs.String())
	}
}

// TestRunSkipsBadKey: a key of the wrong type is logged once and does not
// stop the other lists from being replayed.
func TestRunSkipsBadKey(t *testing.T) {
	t.Parallel()
	watched := []Watched{{InputQueue: "bad"}, {InputQueue: "in"}}
	e := newEnv(t, Settings{ScanInterval: 5 * time.Millisecond, MaxReplays: DefaultMaxReplays}, watched, nil)
	e.load(db{"bad": "a string", "bad/taken/r1": list{"x"}, "in/taken/r1": list{"y"}})
	e.run()
	testutil.Eventually(t, "good list replayed", func() bool { return !e.exists("in/taken/r1") })
	e.waitPasses(3)
	if got := e.list("bad/taken/r1"); !reflect.DeepEqual(got, []string{"x"}) {
		t.Errorf("list of the bad queue %q, want untouched", got)
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "the input queue is not a list"); n != 1 {
		t.Errorf("bad key logged %d times, want once:\n%s", n, logs)
	}
}

// TestRunReplaysDeadWorkers: the task queues announced in the worker
// queues hash have their taken lists "<queue>/taken/<worker>" replayed
// like a dead replica's (the dead worker's fence on the queue deleted in
// the same script), a live worker's left alone, poison tasks
// dead-lettered as tasks, and their delayed replays promoted.
func TestRunReplaysDeadWorkers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Settings{ScanInterval: 5 * time.Millisecond, MaxReplays: 1}, nil, newFakeLive("w-alive"))
	e.load(db{
		"p:worker-queues":         hash{"jobs/todo": "1", "in": "1"}, // "in" is a watcher's: not a task queue
		"jobs/todo/taken/w-dead":  list{keyspace.StampReplays(1, "poison"), "t2", "t1"},
		"jobs/todo/taken/w-alive": list{"busy"},
	})
	deadFence, liveFence := keyspace.WorkerFence("p:", "jobs/todo", "w-dead"), keyspace.WorkerFence("p:", "jobs/todo", "w-alive")
	for _, f := range []string{deadFence, liveFence} {
		if err := e.rdb.Set(context.Background(), f, "token", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	e.run()
	testutil.Eventually(t, "dead worker's list replayed", func() bool { return !e.exists("jobs/todo/taken/w-dead") })
	e.waitPasses(2)
	if e.exists(deadFence) || !e.exists(liveFence) {
		t.Errorf("fences after the replay: dead worker's exists %v, live worker's %v; want deleted, kept", e.exists(deadFence), e.exists(liveFence))
	}
	if got, want := e.list("jobs/todo"), []string{keyspace.StampReplays(1, "t2"), keyspace.StampReplays(1, "t1")}; !reflect.DeepEqual(got, want) {
		t.Errorf("task queue %q, want %q (t1 taken first)", got, want)
	}
	if got := e.list("jobs/todo/taken/w-alive"); !reflect.DeepEqual(got, []string{"busy"}) {
		t.Errorf("live worker's taken list %q, want untouched", got)
	}
	dead := e.list("jobs/todo/dead")
	if len(dead) != 1 || !strings.Contains(dead[0], `"event":"poison"`) || !strings.Contains(dead[0], "it may crash workers (poison task)") {
		t.Errorf("dead list %q, want the poison task as a task", dead)
	}
	if !strings.Contains(e.logs.String(), "replayed the taken list of a dead worker") {
		t.Errorf("no worker replay logged:\n%s", e.logs.String())
	}
	// A retry a worker scheduled is promoted by the leader too.
	e.load(db{"p:delayed:jobs/todo": zset{"1-wx-1:retry-me": at(0)}})
	testutil.Eventually(t, "worker retry promoted", func() bool {
		l := e.list("jobs/todo")
		return len(l) == 3 && l[2] == "retry-me" // at the consuming end
	})
}

// TestSettingsZero: each zero means what the Settings comments say, the
// same as in the configuration: MaxReplays 0 is no replay, not the
// default; DefaultSettings are the configuration's defaults.
func TestSettingsZero(t *testing.T) {
	t.Parallel()
	z := Settings{}.WithDefaults()
	if z.MaxReplays != 0 || z.ScanInterval != DefaultScanInterval || z.ReplayDelay != DefaultReplayDelay ||
		z.MaxReplayDelay != DefaultMaxReplayDelay || z.BatchSize != DefaultBatchSize || z.Prefix != config.DefaultKeyPrefix || z.Now == nil {
		t.Errorf("Settings{}.WithDefaults() = %+v", z)
	}
	if n := (Settings{MaxReplays: -2}).WithDefaults().MaxReplays; n != 0 {
		t.Errorf("MaxReplays -2 taken as %d, want 0", n)
	}
	d, c := DefaultSettings(), config.DefaultClusterSettings()
	if d.MaxReplays != c.MaxReplays || d.ScanInterval != c.ScanInterval || d.ReplayDelay != c.ReplayDelay {
		t.Errorf("DefaultSettings() = %+v, not the configuration's defaults %+v", d, c)
	}
}
