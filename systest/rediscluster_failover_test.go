package systest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redisconn"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// TestRedisClusterReshardAndFailover: a replica on a 3+3 Redis Cluster
// under a steady load (a push every 2 ms) while the slot of its watcher
// is migrated to another master (ASK, TRYAGAIN, then MOVED), then while
// that master is killed with SIGKILL and its replica promoted: it keeps
// running, handles every event pushed once the cluster is whole again (the
// producer, connected as resc-go is, follows the failover), and
// what the failover lost or repeated is counted and logged.
func TestRedisClusterReshardAndFailover(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3, 1)
	// The producer connects as resc-go does (internal/redisconn), so that it
	// follows the failover as promptly.
	conn, err := redisconn.Open(context.Background(), redisconn.Options{URL: cl.Seeds()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rdb := conn.UniversalClient
	cfg := testutil.WriteFile(t, "resc.hjson", `{
  redis: { url: "`+cl.Seeds()+`" }
  cluster: { heartbeat_interval_ms: 300, dead_after_ms: 3000, scan_interval_ms: 300, leader_ttl_ms: 3000 }
  watchers: [{ input_queue: "{b}/in", rules: [{ name: "b", on: "^e/(?P<n>\\d+)$", make: { task: "t/${n}", queue: "{b}/todo" } }] }]
}`)
	p := proctest.Start(t, nil, "run", "--replica-id", "k1", "--http-addr", "off", cfg)
	p.WaitLog(20*time.Second, "resc-go started")
	prod := startSentinelProducer(rdb, "{b}/in", 2*time.Millisecond)
	loadFor := func() { time.Sleep(time.Second) } // steady load, not a synchronisation

	loadFor()
	slot := config.Slot("{b}")
	from := cl.Owner(slot)
	var to *redistest.Server
	for _, m := range cl.Masters() {
		if m != from {
			to = m
			break
		}
	}
	migrated := time.Now()
	cl.MigrateSlot(slot, to)
	t.Logf("slot %d of {b} migrated from %s to %s in %v under load", slot, from.Addr(), to.Addr(), time.Since(migrated).Round(time.Millisecond))
	loadFor()
	killedAt := time.Now()
	to.Stop() // kill -9 of the master now holding {b}
	promoted := cl.AwaitNewOwner(slot, to, 30*time.Second)
	recovered := time.Now()
	t.Logf("kill -9 of %s: its replica %s promoted, cluster ok again after %v", to.Addr(), promoted.Addr(), recovered.Sub(killedAt).Round(time.Millisecond))
	// The producer follows the failover: 200 events acknowledged after the
	// recovery (2 s of its pace on a quiet machine; a loaded one may take
	// longer, which is not what this checks).
	followed, _ := testutil.Poll(time.Minute, func() (bool, string) { return prod.ackedSince(recovered) >= 200, "" })
	acked := prod.halt()

	ctx := context.Background()
	p.Eventually(30*time.Second, "the input queue and taken list drained", func() (bool, string) {
		in, err1 := rdb.LLen(ctx, "{b}/in").Result()
		taken, err2 := rdb.LLen(ctx, "{b}/in/taken/k1").Result()
		return err1 == nil && err2 == nil && in == 0 && taken == 0, fmt.Sprintf("in %d, taken %d (%v %v)", in, taken, err1, err2)
	})
	tasks, err := rdb.LRange(ctx, "{b}/todo", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	o, lost := outcome(acked, tasks)
	ackedAfter := 0
	for _, at := range acked {
		if at.After(recovered) {
			ackedAfter++
		}
	}
	lostMigrating, lostKill, lostAfter := 0, 0, 0
	for _, at := range lost {
		switch {
		case at.Before(killedAt):
			lostMigrating++
		case at.Before(recovered):
			lostKill++
		default:
			lostAfter++
		}
	}
	t.Logf("reshard and master failover under load: %v; lost: %d acknowledged before the kill, %d between the kill and recovery, %d of the %d after",
		o, lostMigrating, lostKill, lostAfter, ackedAfter)
	if !followed {
		t.Errorf("only %d events acknowledged in the minute after recovery: the producer did not follow the failover", ackedAfter)
	}
	select {
	case <-p.Done():
		t.Fatalf("the replica exited (code %d) instead of riding the reshard and failover:\n%s", p.ExitCode(), p.Stderr())
	default:
	}
	if lostMigrating > 0 {
		t.Errorf("%d events acknowledged before the kill (through the migration) have no task", lostMigrating)
	}
	if lostAfter > 0 {
		t.Errorf("%d events acknowledged after the cluster recovered have no task", lostAfter)
	}
	p.Stop(15 * time.Second)
}
