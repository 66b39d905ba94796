package systest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
	"github.com/resc-go/resc/worker"
)

// TestRedisCluster: two replicas on a 3-master Redis Cluster, found from
// one node's URL, with two watchers whose keys live under the tags {a}
// and {b} (different masters): every event makes its task once, also the
// events held by a replica killed with SIGKILL, which the leader finds on
// the right master and replays; the registry and the leader lock live in
// the {resc:} slot; `resc status` and `resc dead list` work across the
// masters; an untagged configuration is refused at start; and after a
// kill -9 of the leader and a rolling restart every task is there once.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3, 0)
	rdb := cl.Client()
	ctx := context.Background()
	if config.Slot("{a}")/5462 == config.Slot("{b}")/5462 {
		t.Fatal("{a} and {b} fall on the same master: pick other tags")
	}
	api := newGatedAPI(t)
	cfg := testutil.WriteFile(t, "resc.hjson", `{
  redis: { url: "`+cl.Nodes[2].URL()+`" }
  cluster: { heartbeat_interval_ms: 200, dead_after_ms: 1000, scan_interval_ms: 200, leader_ttl_ms: 1000 }
  watchers: [
    { input_queue: "{a}/in", rules: [{ name: "a", on: "^e/(?P<n>\\w+)$", fetch: [{ url: "`+api.URL+`/p/${n}", returns: "p" }],
        make: { task: "t/${n}", queue: "{a}/todo/${p.name}", set: "{a}/todo-set" } }] }
    { input_queue: "{b}/in", rules: [{ name: "b", on: "^e/(?P<n>\\w+)$", make: { task: "t/${n}", queue: "{b}/todo" } }] }
  ]
}`)
	start := func(id string) *proctest.Process {
		p := proctest.Start(t, nil, "run", "--replica-id", id, "--http-addr", "off", cfg)
		p.WaitLog(20*time.Second, "resc-go started")
		return p
	}
	replicas := map[string]*proctest.Process{"c1": start("c1"), "c2": start("c2")}

	// Events held by a fetch: one replica takes them, and is killed.
	if err := rdb.LPush(ctx, "{a}/in", "e/slow1", "e/slow2").Err(); err != nil {
		t.Fatal(err)
	}
	victim, survivorID := killHolder(replicas, "the slow events", func(id string) bool {
		return rdb.LLen(ctx, "{a}/in/taken/"+id).Val() > 0
	})
	survivor := replicas[survivorID]
	api.open()
	var events []any
	for i := range 200 {
		events = append(events, "e/"+strconv.Itoa(i))
	}
	for _, q := range []string{"{a}/in", "{b}/in"} {
		if err := rdb.LPush(ctx, q, events...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	wantA := 202
	survivor.Eventually(30*time.Second, "every task made", func() (bool, string) {
		a, b := rdb.LLen(ctx, "{a}/todo/widget").Val(), rdb.LLen(ctx, "{b}/todo").Val()
		return a == int64(wantA) && b == 200, fmt.Sprintf("{a}/todo/widget %d of %d, {b}/todo %d of 200", a, wantA, b)
	})
	for q, n := range map[string]int{"{a}/todo/widget": wantA, "{b}/todo": 200} {
		tasks := rdb.LRange(ctx, q, 0, -1).Val()
		slices.Sort(tasks)
		if len(slices.Compact(tasks)) != n {
			t.Errorf("%s: %d distinct tasks, want %d (each once)", q, len(tasks), n)
		}
	}
	if n := rdb.Exists(ctx, "{resc:}replicas", "{resc:}leader").Val(); n != 2 {
		t.Errorf("%d of the registry and the leader lock under {resc:}, want 2", n)
	}
	for _, args := range [][]string{{"status", cfg}, {"dead", "list", "--queue", "{a}/in", cfg}} {
		c := proctest.Start(t, nil, args...)
		if code := c.Wait(20 * time.Second); code != 0 {
			t.Errorf("resc %v: exit %d\n%s", args, code, c.Stderr())
		}
		if args[0] == "status" && (!strings.Contains(c.Stdout(), victim) || !strings.Contains(c.Stdout(), "alive,leader")) {
			t.Errorf("resc status does not show the dead %s and the leader:\n%s", victim, c.Stdout())
		}
	}

	// The worker SDK refuses a queue whose keys cannot share its slot,
	// naming the key (TestWorkersKilledUnderLoadOnCluster runs workers).
	w, err := worker.New(rdb, worker.Options{ID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Handle("{a}/todo/widget", func(context.Context, worker.Task) error { return nil }, worker.WithDone("widget-done"))
	if err == nil || !strings.Contains(err.Error(), `key "widget-done"`) {
		t.Errorf("worker SDK with an untagged done queue on a cluster: Handle = %v, want an error naming it", err)
	}

	untagged := testutil.WriteFile(t, "untagged.hjson", `{
  redis: { url: "`+cl.Nodes[0].URL()+`" }
  watchers: [{ input_queue: "in", rules: [{ name: "x", on: "^e$", make: { queue: "todo" } }] }]
}`)
	p := proctest.Start(t, nil, "run", "--http-addr", "off", untagged)
	if code := p.Wait(20 * time.Second); code != 1 || !strings.Contains(p.Stderr(), `"in" has no hash tag`) {
		t.Errorf("untagged configuration on a cluster: exit %d, want 1 naming the input queue\n%s", code, p.Stderr())
	}

	// The leader killed, then a rolling restart (SIGTERM to each in turn):
	// leadership moves, nothing is lost or made twice.
	c3, c4 := start("c3"), start("c4")
	survivor.Kill()
	<-survivor.Done()
	c3.Eventually(20*time.Second, "a new leader", func() (bool, string) {
		v := rdb.Get(ctx, "{resc:}leader").Val()
		return strings.HasPrefix(v, "c3#") || strings.HasPrefix(v, "c4#"), "leader lock " + v
	})
	push := func(from, n int) {
		var evs []any
		for i := from; i < from+n; i++ {
			evs = append(evs, "e/x"+strconv.Itoa(i))
		}
		if err := rdb.LPush(ctx, "{b}/in", evs...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	push(0, 100)
	c5 := start("c5")
	c3.Stop(15 * time.Second)
	push(100, 100)
	c4.Stop(15 * time.Second)
	push(200, 100)
	c5.Eventually(30*time.Second, "the tasks of the events pushed around the leader kill and the restarts", func() (bool, string) {
		n := rdb.LLen(ctx, "{b}/todo").Val()
		return n == 500, fmt.Sprintf("{b}/todo %d of 500", n)
	})
	tasks := rdb.LRange(ctx, "{b}/todo", 0, -1).Val()
	slices.Sort(tasks)
	if n := len(slices.Compact(tasks)); n != 500 {
		t.Errorf("{b}/todo: %d distinct tasks of 500", n)
	}
	c5.Stop(15 * time.Second)
}
