package systest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// TestDeadReplicaLeavesRegistry: a replica killed with SIGKILL while its
// taken list holds events stays in the registry, and in resc status, until
// the leader has replayed them; it leaves the registry once it has been
// dead for cluster.dead_retention_ms, and its events were made into tasks
// once each. Whenever it is seen gone, its taken list is empty.
func TestDeadReplicaLeavesRegistry(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	cfg := testutil.WriteFile(t, "resc.hjson", `{
  redis: { url: "`+srv.URL()+`" }
  cluster: { heartbeat_interval_ms: 100, dead_after_ms: 500, leader_ttl_ms: 400, scan_interval_ms: 100, dead_retention_ms: 1500 }
  watchers: [{ input_queue: "in", rules: [{ name: "a", on: "^e/(?P<n>\\w+)$", make: { task: "t/${n}", queue: "todo" } }] }]
}`)
	a := proctest.Start(t, nil, "run", "--replica-id", "a", "--http-addr", "off", cfg)
	a.WaitLog(20*time.Second, "leading")
	b := proctest.Start(t, nil, "run", "--replica-id", "b", "--http-addr", "off", cfg)
	b.WaitLog(20*time.Second, "resc-go started")
	b.Kill()
	<-b.Done()
	// What b held when it died (pushed into its list as its take would).
	if err := rdb.LPush(ctx, "in/taken/b", "e/1", "e/2", "e/3").Err(); err != nil {
		t.Fatal(err)
	}
	status := proctest.Start(t, nil, "status", cfg)
	if code := status.Wait(20 * time.Second); code != 0 || !strings.Contains(status.Stdout(), "\nb ") {
		t.Errorf("resc status right after the kill: exit %d, want b listed:\n%s%s", code, status.Stdout(), status.Stderr())
	}
	a.Eventually(30*time.Second, "b removed from the registry, its events made into tasks", func() (bool, string) {
		_, err := rdb.ZScore(ctx, keyspace.Replicas("resc:"), "b").Result()
		gone := err == redis.Nil
		if gone && rdb.LLen(ctx, "in/taken/b").Val() != 0 {
			t.Errorf("b left the registry while its taken list held %d events", rdb.LLen(ctx, "in/taken/b").Val())
		}
		todo := rdb.LRange(ctx, "todo", 0, -1).Val()
		slices.Sort(todo)
		return gone && slices.Equal(todo, []string{"t/1", "t/2", "t/3"}), fmt.Sprintf("b gone %v, todo %q", gone, todo)
	})
	if owners := rdb.HGetAll(ctx, keyspace.Owners("resc:")).Val(); owners["in/taken/b"] != "" {
		t.Errorf("b still owns its taken list: %v", owners)
	}
	status = proctest.Start(t, nil, "status", cfg)
	if code := status.Wait(20 * time.Second); code != 0 || strings.Contains(status.Stdout(), "\nb ") || !strings.Contains(status.Stdout(), "\na ") {
		t.Errorf("resc status once b was removed: exit %d, want a and not b:\n%s%s", code, status.Stdout(), status.Stderr())
	}
	a.Stop(15 * time.Second)
}
