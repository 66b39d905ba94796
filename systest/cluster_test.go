package systest

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// TestKilledReplicaRecovered (chaos, first scenario): two replicas; the one
// holding an event (its fetch under way) is killed with SIGKILL; the other
// replays it after dead-after plus a leader scan and produces its task
// exactly once. Default cluster settings: dead-after 5 s, scan 1 s.
func TestKilledReplicaRecovered(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	api := newHeldAPI(t)
	cfg := procConfig(t, srv.URL(), api.URL)
	procs := map[string]*proctest.Process{
		"a": proctest.Start(t, nil, "run", "--replica-id", "a", "--http-addr", "off", cfg),
		"b": proctest.Start(t, nil, "run", "--replica-id", "b", "--http-addr", "off", cfg),
	}
	for _, p := range procs {
		p.WaitLog(10*time.Second, "resc-go started")
	}
	if err := rdb.LPush(ctx, "in", "prod/7").Err(); err != nil {
		t.Fatal(err)
	}
	api.waitEntered(procs["a"], 10*time.Second)
	holder, survivor := "", ""
	for id := range procs {
		if n, _ := rdb.LLen(ctx, "in/taken/"+id).Result(); n == 1 {
			holder = id
		} else {
			survivor = id
		}
	}
	if holder == "" || survivor == "" {
		t.Fatalf("no single holder of the event: a=%q b=%q", testutil.List(t, rdb, "in/taken/a"), testutil.List(t, rdb, "in/taken/b"))
	}
	procs[holder].Kill()
	procs[holder].Wait(10 * time.Second)
	killed := time.Now()
	api.Release() // the survivor's fetch answers at once

	p := procs[survivor]
	p.Eventually(15*time.Second, "the killed replica's event handled by the survivor", listIs(t, rdb, "made/todo", "made/7/widget"))
	t.Logf("recovered %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	testutil.AssertList(t, rdb, "in/taken/"+holder)
	testutil.AssertList(t, rdb, "in/taken/"+survivor)
	if !strings.Contains(p.Stderr(), "leader") {
		p.Fatalf("the survivor never led")
	}
	p.Stop(10 * time.Second)
	if got := testutil.List(t, rdb, "made/todo"); !slices.Equal(got, []string{"made/7/widget"}) {
		t.Errorf("made/todo = %q, want the task exactly once", got)
	}
}

// TestSecondReplicaSameIDRefused: a second live replica with an id already
// in use is refused with a clear error.
func TestSecondReplicaSameIDRefused(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := procConfig(t, srv.URL(), "http://127.0.0.1:1")
	first := proctest.Start(t, nil, "run", "--replica-id", "same", "--http-addr", "off", cfg)
	first.WaitLog(10*time.Second, "resc-go started")
	second := proctest.Start(t, nil, "run", "--replica-id", "same", "--http-addr", "off", cfg)
	if code := second.Wait(20 * time.Second); code != 1 {
		second.Fatalf("second replica with the same id: exit code %d, want 1", code)
	}
	if !strings.Contains(second.Stderr(), "in use") {
		second.Fatalf("no clear error")
	}
	first.Stop(10 * time.Second)
}

// holderOf returns which of ids holds exactly one event in its taken list.
func holderOf(t *testing.T, rdb interface {
	LLen(context.Context, string) *redis.IntCmd
}, ids ...string) string {
	t.Helper()
	for _, id := range ids {
		if n, _ := rdb.LLen(context.Background(), "in/taken/"+id).Result(); n == 1 {
			return id
		}
	}
	return ""
}

// holdingPair starts replica a, which leads, lets it take event (its fetch
// held by api), then starts replica b: a holds the event, b is idle.
func holdingPair(t *testing.T, cfg string, rdb *redis.Client, api *heldAPI, event string) (a, b *proctest.Process) {
	t.Helper()
	a = proctest.Start(t, nil, "run", "--replica-id", "a", "--http-addr", "off", cfg)
	a.WaitLog(10*time.Second, "leader: replaying")
	if err := rdb.LPush(context.Background(), "in", event).Err(); err != nil {
		t.Fatal(err)
	}
	api.waitEntered(a, 10*time.Second)
	b = proctest.Start(t, nil, "run", "--replica-id", "b", "--http-addr", "off", cfg)
	b.WaitLog(10*time.Second, "resc-go started")
	if h := holderOf(t, rdb, "a", "b"); h != "a" {
		t.Fatalf("holder %q, want the leader a", h)
	}
	return a, b
}

// TestKilledLeaderRecovered (chaos, second scenario): the leader holds an
// event and is killed with SIGKILL: the other replica becomes leader and
// replays it; the task is made exactly once.
func TestKilledLeaderRecovered(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	api := newHeldAPI(t)
	a, b := holdingPair(t, procConfig(t, srv.URL(), api.URL), rdb, api, "prod/8")
	a.Kill()
	a.Wait(10 * time.Second)
	killed := time.Now()
	api.Release()
	b.Eventually(15*time.Second, "the dead leader's event handled by the new leader", listIs(t, rdb, "made/todo", "made/8/widget"))
	t.Logf("recovered %v after the leader was killed", time.Since(killed).Round(10*time.Millisecond))
	b.WaitLog(time.Second, "leader: replaying")
	b.Stop(10 * time.Second)
	testutil.AssertList(t, rdb, "made/todo", "made/8/widget")
	testutil.AssertList(t, rdb, "in/taken/a")
}

// TestPausedReplicaCommitsNothing (chaos, third scenario): a replica
// holding an event is paused with SIGSTOP until its event is replayed and
// handled elsewhere, then resumed with SIGCONT: it pushes nothing (the
// lease fences it, and the commit script would refuse it anyway).
func TestPausedReplicaCommitsNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	api := newHeldAPI(t)
	a, b := holdingPair(t, procConfig(t, srv.URL(), api.URL), rdb, api, "prod/9")
	a.Signal(syscall.SIGSTOP)
	api.Release() // a's answer waits in its socket; b's fetch answers at once
	b.Eventually(20*time.Second, "the paused replica's event handled elsewhere", listIs(t, rdb, "made/todo", "made/9/widget"))
	a.Signal(syscall.SIGCONT)
	a.Eventually(15*time.Second, "the resumed replica fenced and registered again", func() (bool, string) {
		s := a.Stderr()
		return strings.Contains(s, "lease lost") && strings.Contains(s, "registered again"), "waiting for lease lost, registered again"
	})
	a.Stop(10 * time.Second)
	b.Stop(10 * time.Second)
	testutil.AssertList(t, rdb, "made/todo", "made/9/widget")
}

// fastClusterConfig is procConfig with fast cluster timings.
func fastClusterConfig(t *testing.T, redisURL, fetchBase, cluster string) string {
	t.Helper()
	return testutil.WriteFile(t, "fast.hjson", `{
  redis: { url: "`+redisURL+`" }
  cluster: {`+cluster+`}
  watchers: [
    {
      input_queue: in
      rules: [
        {
          name: enrich
          on: "^prod/(?P<id>\\d+)$"
          fetch: [ { url: "`+fetchBase+`/p/${id}", returns: "p" } ]
          make: { task: "made/${id}/${p.name}", queue: "made/todo" }
        }
      ]
    }
  ]
}
`)
}

// TestClusterTimingsConfigurable: with dead_after_ms 600 and a scan every
// 100 ms, a killed replica's event is back within about a second; timings
// that do not fit together are refused at start.
func TestClusterTimingsConfigurable(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	api := newHeldAPI(t)
	cfg := fastClusterConfig(t, srv.URL(), api.URL, "heartbeat_interval_ms: 100, dead_after_ms: 600, leader_ttl_ms: 400, scan_interval_ms: 100")
	a, b := holdingPair(t, cfg, rdb, api, "prod/5")
	a.Kill()
	a.Wait(10 * time.Second)
	killed := time.Now()
	api.Release()
	b.Eventually(10*time.Second, "the event recovered", listIs(t, rdb, "made/todo", "made/5/widget"))
	if d := time.Since(killed); d > 3*time.Second {
		t.Errorf("recovered after %v with dead_after_ms 600: the timings were not applied", d)
	}
	b.Stop(10 * time.Second)

	bad := fastClusterConfig(t, srv.URL(), api.URL, "heartbeat_interval_ms: 400, dead_after_ms: 500")
	p := proctest.Start(t, nil, "run", "--replica-id", "c", "--http-addr", "off", bad)
	if code := p.Wait(10 * time.Second); code != 1 {
		p.Fatalf("exit code %d for timings that do not fit, want 1 (a configuration problem)", code)
	}
	if !strings.Contains(p.Stderr(), bad+": cluster.heartbeat_interval_ms:") {
		p.Fatalf("no configuration problem at cluster.heartbeat_interval_ms")
	}
}
