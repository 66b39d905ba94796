package systest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// TestStartWaitsOutClusterDown: a replica started against a one-node
// Redis Cluster that serves no slot yet, then all slots but one ("CLUSTERDOWN
// The cluster is down" to every command), waits loudly and starts
// processing once every slot is assigned; it never exits meanwhile.
func TestStartWaitsOutClusterDown(t *testing.T) {
	t.Parallel()
	node := redistest.StartClusterNode(t)
	admin := node.Client()
	ctx := context.Background()
	cfg := testutil.WriteFile(t, "resc.hjson", `{
  redis: { url: "`+node.URL()+`" }
  watchers: [{ input_queue: "{a}/in", rules: [{ name: "a", on: "^e/(?P<n>\\w+)$", make: { task: "t/${n}", queue: "{a}/todo" } }] }]
}`)
	p := proctest.Start(t, nil, "run", "--replica-id", "late", "--http-addr", "off", cfg)
	// No slot at all, then every slot but the last: the whole cluster is
	// down.
	p.WaitLog(20*time.Second, "waiting for Redis")
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16382).Err(); err != nil {
		t.Fatal(err)
	}
	p.Eventually(10*time.Second, "the node reports the cluster down", func() (bool, string) {
		info := admin.ClusterInfo(ctx).Val()
		return strings.Contains(info, "cluster_state:fail") && strings.Contains(info, "cluster_slots_assigned:16383"), info
	})
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{node.Addr()}})
	t.Cleanup(func() { _ = cc.Close() })
	p.Eventually(20*time.Second, "a log of the wait for the cluster that is down", func() (bool, string) {
		return len(logLines(p, "waiting for Redis before starting", "CLUSTERDOWN")) > 0, p.Stderr()
	})
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTS", 16383).Err(); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(30*time.Second, "resc-go started")
	if err := cc.LPush(ctx, "{a}/in", "e/1").Err(); err != nil {
		t.Fatal(err)
	}
	p.Eventually(20*time.Second, "the task of the event pushed once the cluster is up", func() (bool, string) {
		v := cc.LRange(ctx, "{a}/todo", 0, -1).Val()
		return len(v) == 1 && v[0] == "t/1", fmt.Sprint("{a}/todo: ", v)
	})
	p.Stop(15 * time.Second)
}

// TestStartRefusesWhatNoWaitMends: a wrong password, no password where
// one is required, and an address no dial can reach make `resc run` say
// what is wrong and exit at once (exit 2, a setup problem, or 1 for a
// configuration problem of the file), instead of retrying forever.
func TestStartRefusesWhatNoWaitMends(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Option{"--requirepass", "right-secret"})
	cfg := func(url, extra string) string {
		return testutil.WriteFile(t, "resc.hjson", `{
  redis: { url: "`+url+`"`+extra+` }
  watchers: [{ input_queue: "{a}/in", rules: [{ name: "a", on: "^e$", make: { queue: "{a}/todo" } }] }]
}`)
	}
	wrong := "redis://:wrong-secret@" + srv.Addr() + "/0"
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"wrong password", []string{cfg(wrong, "")}, 2, "refused the user or password (WRONGPASS"},
		{"wrong password, mode single", []string{cfg(wrong, `, mode: "single"`)}, 2, "refused the user or password (WRONGPASS"},
		{"wrong password, mode cluster", []string{cfg(wrong, `, mode: "cluster"`)}, 2, "refused the user or password"},
		{"no password", []string{cfg(srv.URL(), "")}, 2, "refused the user or password (NOAUTH"},
		{"port 99999 on the command line", []string{"--redis-url", "redis://127.0.0.1:99999/0", cfg(srv.URL(), "")}, 2, `port "99999" is not a port number`},
		{"port 99999 in the file", []string{cfg("redis://127.0.0.1:99999/0", "")}, 1, `redis.url: the Redis URL cannot be used: port "99999"`},
		{"impossible host", []string{"--redis-url", "redis://bad..host:6379/0", cfg(srv.URL(), "")}, 2, `host "bad..host" is not a host name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := proctest.Start(t, nil, append([]string{"run", "--replica-id", "r", "--http-addr", "off"}, tt.args...)...)
			code := p.Wait(15 * time.Second)
			if code != tt.code || !strings.Contains(p.Stderr(), tt.want) {
				t.Errorf("exit %d, want %d with %q on stderr:\n%s", code, tt.code, tt.want, p.Stderr())
			}
			if strings.Contains(p.Stderr(), "wrong-secret") {
				t.Errorf("the password is on stderr:\n%s", p.Stderr())
			}
		})
	}
}
