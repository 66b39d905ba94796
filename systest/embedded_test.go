package systest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/testutil"
)

// TestEmbeddedRecoversKilledReplica: the embedded server of `make run`
// lets keys expire, so a replica killed while it holds an event is seen
// dead and its event recovered. Replica a runs the embedded server on a
// loopback port (--embedded=always) and leads; replica b is a second
// process using that server through its URL, as a second terminal of
// `make run` would. b holds an event (its fetch held) and is killed with
// SIGKILL: a replays b's taken list, and the task is made exactly once.
func TestEmbeddedRecoversKilledReplica(t *testing.T) {
	t.Parallel()
	url := "redis://" + testutil.FreePort(t) + "/0"
	instant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name": "widget"}`)
	}))
	t.Cleanup(instant.Close)
	held := newHeldAPI(t)
	// Replica a fetches from an API that answers at once, b from one that
	// holds every request: what b takes stays in its taken list.
	const timings = "heartbeat_interval_ms: 200, dead_after_ms: 1500, leader_ttl_ms: 1000, scan_interval_ms: 200"
	a := proctest.Start(t, nil, "run", "--embedded=always", "--replica-id", "a", "--http-addr", "off",
		fastClusterConfig(t, url, instant.URL, timings))
	a.WaitLog(10*time.Second, "leader: replaying")
	if !strings.Contains(a.Stderr(), "push --redis-url "+url+" ") {
		a.Fatalf("the embedded server is not at %s", url)
	}
	b := proctest.Start(t, nil, "run", "--replica-id", "b", "--http-addr", "off",
		fastClusterConfig(t, url, held.URL, timings))
	b.WaitLog(10*time.Second, "resc-go started")

	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx := context.Background()

	// Push events one at a time until b takes one: a makes the tasks of
	// those it takes at once.
	var victim string
	var events []string
	for i := 1; i <= 50 && victim == ""; i++ {
		ev := fmt.Sprintf("prod/%d", i)
		events = append(events, ev)
		if err := rdb.LPush(ctx, "in", ev).Err(); err != nil {
			t.Fatal(err)
		}
		a.Eventually(10*time.Second, ev+" made by a or held by b", func() (bool, string) {
			made := testutil.List(t, rdb, "made/todo")
			takenB := testutil.List(t, rdb, "in/taken/b")
			if slices.Contains(takenB, ev) {
				victim = ev
				return true, ""
			}
			return slices.Contains(made, fmt.Sprintf("made/%d/widget", i)), fmt.Sprintf("made/todo = %q, in/taken/b = %q", made, takenB)
		})
	}
	if victim == "" {
		t.Fatalf("b took none of %d events", len(events))
	}
	b.Kill()
	b.Wait(10 * time.Second)
	killed := time.Now()

	a.Eventually(20*time.Second, "b's event "+victim+" recovered by a", listIs(t, rdb, "in/taken/b"))
	want := make([]string, len(events))
	for i := range events {
		want[i] = fmt.Sprintf("made/%d/widget", i+1)
	}
	a.Eventually(10*time.Second, "every task made once", listIs(t, rdb, "made/todo", want...))
	t.Logf("%s recovered %v after the kill", victim, time.Since(killed).Round(10*time.Millisecond))
	a.Stop(10 * time.Second)
}
