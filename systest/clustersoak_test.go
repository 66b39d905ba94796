package systest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
	"github.com/resc-go/resc/membership"
)

// TestClusterSoak (chaos in cluster mode): on a 3-master Redis Cluster,
// two watchers on tags held by different masters ({a} and {b}), three
// replicas, events pushed to both input queues every 5 ms for
// RESC_CLUSTER_SOAK (default 15 s; make chaos runs it for RESC_SOAK),
// while a replica chosen at random, the leader as often as another, is
// killed with SIGKILL (most often) or stopped with SIGTERM, and replaced
// under a new id or the same one. The rules have no dedup set: every
// acknowledged event must have its task exactly once, in its tag's queue,
// and no taken list may be left on either master.
func TestClusterSoak(t *testing.T) {
	t.Parallel()
	dur := envSetting(t, "RESC_CLUSTER_SOAK", 15*time.Second, time.ParseDuration, "a positive duration like 3m")
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("cluster soak of %v (RESC_CLUSTER_SOAK), seed %d", dur, seed)
	if config.Slot("{a}")/5462 == config.Slot("{b}")/5462 {
		t.Fatal("{a} and {b} fall on the same master: pick other tags")
	}
	cl := redistest.StartCluster(t, 3, 0)
	rdb := cl.Client()
	cfg := testutil.WriteFile(t, "soak.hjson", `{
  redis: { url: "`+cl.Nodes[0].URL()+`" }
  cluster: { heartbeat_interval_ms: 200, dead_after_ms: 1500, leader_ttl_ms: 1000, scan_interval_ms: 200, replay_delay_ms: 200, max_replays: 100 }
  watchers: [
    { input_queue: "{a}/in", rules: [{ name: "a", on: "^e/(?P<n>\\d+)$", make: { task: "t/${n}", queue: "{a}/todo" } }] }
    { input_queue: "{b}/in", rules: [{ name: "b", on: "^e/(?P<n>\\d+)$", make: { task: "t/${n}", queue: "{b}/todo" } }] }
  ]
}`)
	live := map[string]*proctest.Process{}
	n := 0
	start := func(id string) {
		p := proctest.Start(t, []string{"RESC_LOG=warn"}, "run", "--replica-id", id, "--http-addr", "off", cfg)
		p.WaitLog(20*time.Second, "resc-go started")
		live[id] = p
	}
	newID := func() string { n++; return "s" + strconv.Itoa(n) }
	for range 3 {
		start(newID())
	}
	queues := []string{"{a}", "{b}"}
	producers := map[string]*sentinelProducer{}
	for _, tag := range queues {
		producers[tag] = startSentinelProducer(rdb, tag+"/in", 5*time.Millisecond)
	}
	kills, leaderKills, terms, started := 0, 0, 0, 3
	for end := time.Now().Add(dur); time.Now().Before(end); {
		atRandom(time.Second) // the pace of the chaos
		leader, _ := membership.Leader(context.Background(), rdb, "")
		var ids []string
		for id := range live {
			ids = append(ids, id)
		}
		id := ids[rng.IntN(len(ids))]
		if rng.IntN(2) == 0 && live[leader] != nil {
			id = leader
		}
		p := live[id]
		delete(live, id)
		if rng.IntN(5) == 0 {
			p.Stop(20 * time.Second)
			terms++
		} else {
			p.Kill()
			<-p.Done()
			kills++
			if id == leader {
				leaderKills++
			}
		}
		if rng.IntN(2) == 0 {
			id = newID()
		}
		start(id)
		started++
	}
	acked := map[string]map[string]time.Time{}
	for tag, p := range producers {
		acked[tag] = p.halt()
	}
	var watcher *proctest.Process
	for _, p := range live {
		watcher = p
	}
	ctx := context.Background()
	watcher.Eventually(time.Minute, "every acknowledged event's task, nothing in flight", func() (bool, string) {
		var state string
		ok := true
		for _, tag := range queues {
			tasks := rdb.LLen(ctx, tag+"/todo").Val()
			in := rdb.LLen(ctx, tag+"/in").Val()
			taken := takenOnMaster(t, rdb, tag+"/in/taken/*")
			ok = ok && tasks >= int64(len(acked[tag])) && in == 0 && len(taken) == 0
			state += fmt.Sprintf("%s: %d tasks of %d, %d queued, taken lists %q; ", tag, tasks, len(acked[tag]), in, taken)
		}
		return ok, state
	})
	for _, tag := range queues {
		o, lost := outcome(acked[tag], testutil.List(t, rdb, tag+"/todo"))
		t.Logf("%s: %s", tag, o)
		if o.lost != 0 || o.duplicated != 0 {
			t.Errorf("%s: %s, want none lost or duplicated (lost: %v)", tag, o, lost)
		}
	}
	for _, p := range live {
		p.Stop(20 * time.Second)
	}
	t.Logf("cluster soak: %v, %d SIGKILLs (%d of the leader), %d SIGTERMs, %d replicas started", dur, kills, leaderKills, terms, started)
	if kills == 0 {
		t.Error("no kill in the soak: RESC_CLUSTER_SOAK is too short")
	}
}

// takenOnMaster lists the keys matching pattern (its hash tag first) on
// the master that serves its slot.
func takenOnMaster(t *testing.T, rdb *redis.ClusterClient, pattern string) []string {
	t.Helper()
	m, err := rdb.MasterForKey(context.Background(), pattern)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := m.Keys(context.Background(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
