package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/internal/testutil"
	"github.com/resc-go/resc/membership"
)

// opsConfig is the configuration of the status and dead tests: watchers
// "in" and "jobs", internal keys under "t:".
func opsConfig(t *testing.T, redisURL string) string {
	t.Helper()
	return writeConfig(t, "ops.json", `{
  "redis": { "url": "`+redisURL+`" },
  "key_prefix": "t:",
  "watchers": [
    { "input_queue": "in", "rules": [ { "on": "^acq/(?P<id>\\d+)$", "make": { "task": "trt/${id}", "queue": "trt/todo" } } ] },
    { "input_queue": "jobs", "rules": [ { "on": "^job$", "make": { "queue": "work" } } ] }
  ]
}
`)
}

// rpush writes lists, RPUSHed in order (head first), failing the test on
// an error.
func rpush(t *testing.T, rdb *redis.Client, lists map[string][]string) {
	t.Helper()
	for k, vs := range lists {
		for _, v := range vs {
			if err := rdb.RPush(t.Context(), k, v).Err(); err != nil {
				t.Fatalf("RPUSH %s: %v", k, err)
			}
		}
	}
}

// leadFor runs an elector of replica id until the end of the test and
// returns once it leads.
func leadFor(t *testing.T, rdb *redis.Client, s membership.Settings, id string) {
	t.Helper()
	el, err := membership.NewElector(rdb, id, membership.Options{Settings: s, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	leading, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		_ = el.Run(ctx, func(lctx context.Context) {
			close(leading)
			<-lctx.Done()
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-leading:
	case <-time.After(10 * time.Second):
		t.Fatalf("replica %s did not lead within 10s", id)
	}
}

// Shape of `resc status --json` as the README documents it, decoded
// strictly: a field added or renamed fails the test.
type (
	statusJSON struct {
		Prefix   string        `json:"prefix"`
		Leader   *string       `json:"leader"`
		Replicas []replicaJSON `json:"replicas"`
		Watchers []watcherJSON `json:"watchers"`
		TaskQ    []struct {
			Queue      string          `json:"queue"`
			Pending    *int64          `json:"pending"`
			Taken      int64           `json:"taken"`
			TakenLists []takenListJSON `json:"taken_lists"`
		} `json:"task_queues"`
		DeadRetentionMs *int64   `json:"dead_retention_ms"`
		Problems        []string `json:"problems"`
	}
	takenListJSON struct {
		List    string `json:"list"`
		Replica string `json:"replica"`
		Length  int64  `json:"length"`
		Orphan  bool   `json:"orphan"`
	}
	replicaJSON struct {
		ID             string     `json:"id"`
		Alive          bool       `json:"alive"`
		Leader         bool       `json:"leader"`
		HeartbeatAgeMs *int64     `json:"heartbeat_age_ms"`
		Registered     time.Time  `json:"registered"`
		Host           string     `json:"host"`
		PID            int        `json:"pid"`
		Version        string     `json:"version"`
		Kind           string     `json:"kind"`
		Started        *time.Time `json:"started"`
		UptimeMs       *int64     `json:"uptime_ms"`
		TakenLists     []struct {
			List   string `json:"list"`
			Length int64  `json:"length"`
		} `json:"taken_lists"`
		DeadSince   *time.Time `json:"dead_since"`
		RemovalInMs *int64     `json:"removal_in_ms"`
	}
	watcherJSON struct {
		InputQueue string          `json:"input_queue"`
		TakenQueue string          `json:"taken_queue"`
		Input      *int64          `json:"input"`
		Taken      int64           `json:"taken"`
		TakenLists []takenListJSON `json:"taken_lists"`
		Dead       *int64          `json:"dead"`
		Delayed    *int64          `json:"delayed"`
	}
)

// TestStatus: two live replicas (a leads) and a dead one (c), with events
// in their taken lists, in a taken list of a replica that never registered
// and in the queues; the human tables and the JSON document say the same.
func TestStatus(t *testing.T) {
	clearEnv(t)
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := t.Context()
	cfg := opsConfig(t, srv.URL())
	d, err := script.Detect(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	s := membership.Settings{Prefix: "t:", HeartbeatInterval: time.Second, DeadAfter: time.Minute, LeaderTTL: time.Minute}
	started := time.Now().Add(-90 * time.Minute).UTC().Truncate(time.Second)
	for i, id := range []string{"a", "b", "c"} {
		info := membership.Info{ID: id, Host: "host-" + id, PID: 100 + i, Version: "v-" + id, Started: started,
			TakenLists: []string{"in/taken/" + id, "jobs/taken/" + id}}
		if id == "b" {
			info.Kind = "worker" // a worker of the Go SDK registers like a replica
		}
		if _, err := membership.Register(ctx, rdb, info, membership.Options{Settings: s, Logger: slog.New(slog.DiscardHandler), Dialect: d}); err != nil {
			t.Fatal(err)
		}
	}
	// c dies: its registration expires; its taken lists keep their owner.
	if err := rdb.Del(ctx, keyspace.Replica("t:", "c"), keyspace.ReplicaInfo("t:", "c")).Err(); err != nil {
		t.Fatal(err)
	}
	leadFor(t, rdb, s, "a")
	rpush(t, rdb, map[string][]string{
		"in":             {"acq/1", "acq/2", "acq/3", "acq/4"},
		"in/taken/a":     {"acq/5", "acq/6"},
		"in/taken/c":     {"acq/7", "acq/8", "acq/9"},
		"in/taken/ghost": {"acq/10"}, // never registered
		"jobs/taken/b":   {"job"},
		"in/dead":        {`{"event":"x"}`, `{"event":"y"}`},
		// Not taken lists: resc's own taken list, a key of another depth.
		"in/taken":     {"old"},
		"in/taken/x/y": {"z"},
	})
	if err := rdb.ZAdd(ctx, keyspace.DelaySchedule("t:", "in"), redis.Z{Score: 1, Member: "1-1:acq/11"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "jobs/dead", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The leader found c dead 20 minutes ago: removed in 40 (the default
	// retention, 1 h), once its taken lists are empty.
	deadSince := time.Now().Add(-20 * time.Minute).UTC().Truncate(time.Millisecond)
	if err := rdb.HSet(ctx, keyspace.DeadSince("t:"), "c", deadSince.UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	// Workers of the Go SDK on the task queue "work", one of them dead
	// with 15 tasks in its taken list; "jobs", a watcher's queue, is left
	// to its watcher.
	if err := rdb.HSet(ctx, keyspace.WorkerQueues("t:"), "work", "1", "jobs", "1").Err(); err != nil {
		t.Fatal(err)
	}
	var tasks []string
	for i := range 15 {
		tasks = append(tasks, fmt.Sprint("task-", i))
	}
	rpush(t, rdb, map[string][]string{"work": {"t1", "t2"}, "work/taken/w-dead": tasks, "work/taken/b": {"t0"}})

	t.Run("tables", func(t *testing.T) {
		stdout, stderr, err := runCmd(t, "status", cfg)
		if err != nil {
			t.Fatalf("status: %v; stderr:\n%s", err, stderr)
		}
		t.Logf("stdout:\n%s", stdout)
		rows := map[string][]string{} // first cell -> cells
		for _, line := range strings.Split(stdout, "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				rows[f[0]] = f
			}
		}
		if !strings.HasPrefix(stdout, "leader: a\n") {
			t.Errorf("no leader line \"leader: a\"")
		}
		for _, id := range []string{"a", "b"} {
			r := rows[id]
			if len(r) != 9 {
				t.Errorf("replica %s: row %q, want 9 cells", id, r)
				continue
			}
			state := map[string]string{"a": "alive,leader", "b": "alive,worker"}[id]
			lists := "in/taken/" + id + "(" + map[string]string{"a": "2", "b": "0"}[id] + "),jobs/taken/" + id + "(" + map[string]string{"a": "0", "b": "1"}[id] + ")"
			want := []string{id, state, r[2], "host-" + id, map[string]string{"a": "100", "b": "101"}[id], "v-" + id, started.Format(time.RFC3339), r[7], lists}
			if !slices.Equal(r, want) {
				t.Errorf("replica %s: row %q, want %q", id, r, want)
			}
			if age, err := time.ParseDuration(r[2]); err != nil || age < 0 || age > s.DeadAfter {
				t.Errorf("replica %s: heartbeat age %q, want a duration below dead-after", id, r[2])
			}
			if up, err := time.ParseDuration(r[7]); err != nil || up < 90*time.Minute || up > 91*time.Minute {
				t.Errorf("replica %s: uptime %q, want about 1h30m", id, r[7])
			}
		}
		if r := rows["c"]; len(r) != 9 || !strings.HasPrefix(r[1], "dead,removed-in-39m") && !strings.HasPrefix(r[1], "dead,removed-in-40m") {
			t.Errorf("dead replica c: row %q, want the state \"dead,removed-in-40m0s\" (about)", r)
		} else {
			rows["c"][1] = "dead,removed"
		}
		wantRows := [][]string{
			{"c", "dead,removed", "-", "-", "-", "-", "-", "-", "in/taken/c(3),jobs/taken/c(0)"},
			{"in", "4", "6", "2", "1"},
			{"jobs", "0", "1", "-", "0"},
			{"work", "2", "16"},
			{"in/taken/a", "a", "2", "held"},
			{"in/taken/c", "c", "3", "orphan"},
			{"in/taken/ghost", "ghost", "1", "orphan"},
			{"jobs/taken/b", "b", "1", "held"},
			{"work/taken/b", "b", "1", "held"},
			{"work/taken/w-dead", "w-dead", "15", "orphan"},
		}
		if !strings.Contains(stdout, "dead replicas and workers leave the registry 1h0m0s after the leader finds them dead") {
			t.Errorf("no line about the retention in:\n%s", stdout)
		}
		for _, want := range wantRows {
			if got := rows[want[0]]; !slices.Equal(got, want) {
				t.Errorf("row %q, want %q", got, want)
			}
		}
		for _, never := range []string{"in/taken/x/y", "in/taken"} {
			if r, ok := rows[never]; ok {
				t.Errorf("%q is no taken list, but is shown: %q", never, r)
			}
		}
		if want := `warning: dead-letter list "jobs/dead": WRONGTYPE`; !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("stderr %q, want one line starting %q", stderr, want)
		}
	})

	t.Run("json", func(t *testing.T) {
		stdout, stderr, err := runCmd(t, "status", "--json", cfg)
		if err != nil {
			t.Fatalf("status --json: %v; stderr:\n%s", err, stderr)
		}
		dec := json.NewDecoder(strings.NewReader(stdout))
		dec.DisallowUnknownFields()
		var got statusJSON
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("decoding %s: %v", stdout, err)
		}
		if dec.More() {
			t.Errorf("more than one JSON document:\n%s", stdout)
		}
		// Values of the clock, checked, then set to what the want has.
		for i := range got.Replicas {
			r := &got.Replicas[i]
			if r.Alive {
				if r.HeartbeatAgeMs == nil || *r.HeartbeatAgeMs < 0 || *r.HeartbeatAgeMs > s.DeadAfter.Milliseconds() {
					t.Errorf("replica %s: heartbeat_age_ms %v", r.ID, r.HeartbeatAgeMs)
				}
				if r.UptimeMs == nil || *r.UptimeMs < (90*time.Minute).Milliseconds() || *r.UptimeMs > (91*time.Minute).Milliseconds() {
					t.Errorf("replica %s: uptime_ms %v, want about 90 min", r.ID, r.UptimeMs)
				}
				r.HeartbeatAgeMs, r.UptimeMs = nil, nil
			}
			if time.Since(r.Registered) > time.Minute {
				t.Errorf("replica %s: registered %v", r.ID, r.Registered)
			}
			r.Registered = time.Time{}
			if r.RemovalInMs != nil {
				if left := time.Duration(*r.RemovalInMs) * time.Millisecond; left > 40*time.Minute || left < 39*time.Minute {
					t.Errorf("replica %s: removal_in_ms %d, want about 40 min", r.ID, *r.RemovalInMs)
				}
				r.RemovalInMs = nil
			}
		}
		var want statusJSON
		err = json.Unmarshal([]byte(`{
  "prefix": "t:", "leader": "a",
  "replicas": [
    {"id": "a", "alive": true, "leader": true, "heartbeat_age_ms": null, "registered": "0001-01-01T00:00:00Z",
     "host": "host-a", "pid": 100, "version": "v-a", "started": "`+started.Format(time.RFC3339)+`", "uptime_ms": null,
     "taken_lists": [{"list": "in/taken/a", "length": 2}, {"list": "jobs/taken/a", "length": 0}]},
    {"id": "b", "alive": true, "leader": false, "heartbeat_age_ms": null, "registered": "0001-01-01T00:00:00Z",
     "host": "host-b", "pid": 101, "version": "v-b", "kind": "worker", "started": "`+started.Format(time.RFC3339)+`", "uptime_ms": null,
     "taken_lists": [{"list": "in/taken/b", "length": 0}, {"list": "jobs/taken/b", "length": 1}]},
    {"id": "c", "alive": false, "leader": false, "heartbeat_age_ms": null, "registered": "0001-01-01T00:00:00Z",
     "host": "", "pid": 0, "version": "", "started": null, "uptime_ms": null,
     "taken_lists": [{"list": "in/taken/c", "length": 3}, {"list": "jobs/taken/c", "length": 0}],
     "dead_since": "`+deadSince.Format(time.RFC3339Nano)+`", "removal_in_ms": null}
  ],
  "task_queues": [
    {"queue": "work", "pending": 2, "taken": 16, "taken_lists": [
      {"list": "work/taken/b", "replica": "b", "length": 1, "orphan": false},
      {"list": "work/taken/w-dead", "replica": "w-dead", "length": 15, "orphan": true}]}
  ],
  "dead_retention_ms": 3600000,
  "watchers": [
    {"input_queue": "in", "taken_queue": "in/taken", "input": 4, "taken": 6, "dead": 2, "delayed": 1, "taken_lists": [
      {"list": "in/taken/a", "replica": "a", "length": 2, "orphan": false},
      {"list": "in/taken/c", "replica": "c", "length": 3, "orphan": true},
      {"list": "in/taken/ghost", "replica": "ghost", "length": 1, "orphan": true}]},
    {"input_queue": "jobs", "taken_queue": "jobs/taken", "input": 0, "taken": 1, "dead": null, "delayed": 0, "taken_lists": [
      {"list": "jobs/taken/b", "replica": "b", "length": 1, "orphan": false}]}
  ],
  "problems": ["dead-letter list \"jobs/dead\": WRONGTYPE Operation against a key holding the wrong kind of value"]
}`), &want)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			t.Errorf("status --json:\n got %s\nwant %s", g, w)
		}
	})
}

// TestStatusEmpty: a Redis that knows nothing of resc-go.
func TestStatusEmpty(t *testing.T) {
	clearEnv(t)
	srv := redistest.Start(t)
	stdout, stderr, err := runCmd(t, "status", "--redis-url", srv.URL(), opsConfig(t, "redis://127.0.0.1:1/0"))
	if err != nil {
		t.Fatalf("status: %v; stderr:\n%s", err, stderr)
	}
	for _, want := range []string{"leader: none\n", "no replica registered\n", "no taken list holds events\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in stdout:\n%s", want, stdout)
		}
	}
	stdout, _, err = runCmd(t, "status", "--json", "--redis-url", srv.URL(), opsConfig(t, "redis://127.0.0.1:1/0"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	// Empty arrays, not null: a consumer may iterate without a check.
	for _, k := range []string{"replicas", "task_queues", "problems"} {
		if v, ok := doc[k].([]any); !ok || len(v) != 0 {
			t.Errorf("%s = %#v, want []", k, doc[k])
		}
	}
	if doc["leader"] != nil {
		t.Errorf("leader = %#v, want null", doc["leader"])
	}
}

// TestOpsUnreachable: status and dead exit 1 within seconds, with one
// line, when Redis is not there or does not answer.
func TestOpsUnreachable(t *testing.T) {
	clearEnv(t)
	closed := "redis://" + freePort(t) + "/0" // nobody listens there
	// A listener that never accepts: the connection is made, no answer.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	silent := "redis://" + ln.Addr().String() + "/0"
	for _, tc := range []struct{ name, url string }{{"closed port", closed}, {"no answer", silent}} {
		for _, args := range [][]string{{"status"}, {"dead", "list", "--queue", "in"}, {"dead", "requeue", "--queue", "in", "--all"}} {
			t.Run(tc.name+"/"+strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				var stdout, stderr bytes.Buffer
				start := time.Now()
				err := runMain(t.Context(), append(args, "--redis-url", tc.url, opsConfig(t, tc.url)), &stdout, &stderr)
				took := time.Since(start)
				var ee *exitError
				if !errors.As(err, &ee) || ee.code != 1 {
					t.Fatalf("err = %#v, want exit code 1", err)
				}
				if !strings.HasPrefix(ee.msg, "Redis at ") || !strings.Contains(ee.msg, "did not answer") || strings.Contains(ee.msg, "\n") {
					t.Errorf("message %q, want one line \"Redis at ... did not answer: ...\"", ee.msg)
				}
				if took > opsDialTimeout+opsIOTimeout+2*time.Second {
					t.Errorf("took %v to give up", took)
				}
				if stdout.Len() > 0 || stderr.Len() > 0 {
					t.Errorf("output %q %q, want none (the error is printed by main)", stdout.String(), stderr.String())
				}
			})
		}
	}
}

// TestOpsRefuseBadArguments: what status and dead refuse before they
// connect anywhere, with exit code 2 and the usage.
func TestOpsRefuseBadArguments(t *testing.T) {
	clearEnv(t)
	url, assertNoConnection := silentRedis(t)
	cfg := opsConfig(t, url)
	one := writeConfig(t, "one.json", `{"redis": {"url": "`+url+`"}, "watchers": [{"input_queue": "in", "rules": [{"on": "x", "make": {"queue": "q"}}]}]}`)
	noURL := writeConfig(t, "nourl.json", `{"watchers": [{"input_queue": "in", "rules": [{"on": "x", "make": {"queue": "q"}}]}]}`)
	tests := []struct {
		args    []string
		message string // prefix of the exit error's message
	}{
		{[]string{"status"}, "usage: resc status"},
		{[]string{"status", cfg, cfg}, "usage: resc status"},
		{[]string{"status", "--bogus", cfg}, ""},
		{[]string{"status", "--redis-url", "http://x/", cfg}, `bad Redis URL "http://x/"`},
		{[]string{"status", noURL}, "no Redis URL"},
		{[]string{"dead"}, "dead: want list, requeue or drop"},
		{[]string{"dead", "show", cfg}, `dead: unknown command "show"`},
		{[]string{"dead", "list"}, "dead list: want one CONFIG"},
		{[]string{"dead", "list", cfg}, `dead list: the configuration has 2 watchers: choose one with --queue ("in", "jobs")`},
		{[]string{"dead", "list", "--limit", "-1", one}, "dead list: --limit -1"},
		{[]string{"dead", "list", "--all", one}, ""},
		{[]string{"dead", "list", "--redis-url", "http://x/", one}, `bad Redis URL "http://x/"`},
		{[]string{"dead", "list", noURL}, "no Redis URL"},
		{[]string{"dead", "requeue", one}, "dead requeue: choose the entries with one of --index, --all or --match"},
		{[]string{"dead", "requeue", "--all", "--index", "1", one}, "dead requeue: choose the entries with one of"},
		{[]string{"dead", "requeue", "--all", "--match", "x", one}, "dead requeue: choose the entries with one of"},
		{[]string{"dead", "requeue", "--index", "0", one}, ""},
		{[]string{"dead", "requeue", "--index", "x", one}, ""},
		{[]string{"dead", "requeue", "--match", "(", one}, "dead requeue: --match: error parsing regexp"},
		{[]string{"dead", "requeue", "--json", "--all", one}, ""},
		{[]string{"dead", "requeue", "--all", cfg}, "dead requeue: the configuration has 2 watchers"},
		{[]string{"dead", "drop", "--raw", "--all", one}, ""},
		{[]string{"dead", "drop", "--all", "--limit", "3", one}, ""},
		{[]string{"dead", "drop", one}, "dead drop: choose the entries with one of"},
	}
	for _, tt := range tests {
		_, stderr, err := runCmd(t, tt.args...)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.HasPrefix(ee.msg, tt.message) {
			t.Errorf("%q: err = %#v, want code 2 and a message starting with %q; stderr:\n%s", tt.args, err, tt.message, stderr)
			continue
		}
		// The usage, but where the command line is right and the Redis
		// URL is not.
		shown := strings.Contains(stderr, "usage:") || strings.HasPrefix(ee.msg, "usage:")
		if usage := !strings.Contains(tt.message, "Redis URL"); usage != shown {
			t.Errorf("%q: stderr %q; want the usage: %v", tt.args, stderr, usage)
		}
	}
	assertNoConnection()
}

// TestStatusExcludesQueues: a watcher's input queue named like a taken
// list of another watcher ("in/taken/q") is not taken for one, as the
// leader does not take it for one.
func TestStatusExcludesQueues(t *testing.T) {
	clearEnv(t)
	srv := redistest.Start(t)
	rdb := srv.Client()
	cfg := writeConfig(t, "two.json", `{"redis": {"url": "`+srv.URL()+`"}, "watchers": [
  {"input_queue": "in", "rules": [{"on": "x", "make": {"queue": "q"}}]},
  {"input_queue": "in/taken/q", "rules": [{"on": "x", "make": {"queue": "q"}}]}]}`)
	rpush(t, rdb, map[string][]string{"in/taken/q": {"e1", "e2"}, "in/taken/r": {"e3"}})
	stdout, stderr, err := runCmd(t, "status", "--json", cfg)
	if err != nil {
		t.Fatalf("status: %v; stderr:\n%s", err, stderr)
	}
	var doc statusJSON
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Watchers) != 2 || doc.Watchers[0].Taken != 1 || len(doc.Watchers[0].TakenLists) != 1 ||
		doc.Watchers[0].TakenLists[0].List != "in/taken/r" || doc.Watchers[1].Input == nil || *doc.Watchers[1].Input != 2 {
		t.Errorf("status --json: %s\nwant in/taken/q counted as the input queue of the second watcher only", stdout)
	}
}

// TestStatusClusterDown: while the Redis Cluster is down, `resc status`
// says that the read failed and exits 1, in both forms, instead of showing
// an empty registry; once the cluster is back it shows the two replicas.
func TestStatusClusterDown(t *testing.T) {
	clearEnv(t)
	node := redistest.StartClusterNode(t)
	admin := node.Client()
	ctx := t.Context()
	clusterState := func(want string) {
		t.Helper()
		testutil.EventuallyWithin(t, 20*time.Second, "cluster_state:"+want, func() bool {
			return strings.Contains(admin.ClusterInfo(ctx).Val(), "cluster_state:"+want)
		})
	}
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	clusterState("ok")
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{node.Addr()}})
	t.Cleanup(func() { _ = cc.Close() })
	d, err := script.Detect(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	s := membership.Settings{Prefix: "t:", HeartbeatInterval: time.Second, DeadAfter: time.Hour, LeaderTTL: time.Minute}
	for _, id := range []string{"r1", "r2"} {
		info := membership.Info{ID: id, TakenLists: []string{"in/taken/" + id}}
		if _, err := membership.Register(ctx, cc, info, membership.Options{Settings: s, Dialect: d, Logger: slog.New(slog.DiscardHandler)}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := writeConfig(t, "c.json", `{"redis": {"url": "`+node.URL()+`"}, "key_prefix": "t:",
  "watchers": [{"input_queue": "{t:}in", "rules": [{"on": "x", "make": {"queue": "{t:}q"}}]}]}`)

	if err := admin.Do(ctx, "CLUSTER", "DELSLOTS", 16383).Err(); err != nil {
		t.Fatal(err)
	}
	clusterState("fail")
	for _, form := range [][]string{{"status", cfg}, {"status", "--json", cfg}} {
		stdout, stderr, err := runCmd(t, form...)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(ee.msg, "CLUSTERDOWN") {
			t.Errorf("%q while the cluster is down: err %#v, want exit 1 naming CLUSTERDOWN", form, err)
		}
		if stdout != "" || strings.Contains(stderr, "no replica registered") {
			t.Errorf("%q while the cluster is down: stdout %q, stderr %q: want nothing shown as a result", form, stdout, stderr)
		}
	}

	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTS", 16383).Err(); err != nil {
		t.Fatal(err)
	}
	clusterState("ok")
	stdout, stderr, err := runCmd(t, "status", cfg)
	if err != nil || !strings.Contains(stdout, "r1 ") || !strings.Contains(stdout, "r2 ") {
		t.Errorf("status once the cluster is back: err %v, stdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
}
