package systest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redisconn"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
	"github.com/resc-go/resc/worker"
)

// documentedACL is the ACL SETUSER line of docs/redis.md, with the
// password put in.
func documentedACL(t *testing.T, password string) []any {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "docs", "redis.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "ACL SETUSER resc ") {
			var args []any
			for _, w := range strings.Fields(line) {
				args = append(args, strings.Replace(w, ">CHANGE-ME", ">"+password, 1))
			}
			return args
		}
	}
	t.Fatal("docs/redis.md has no line starting with \"ACL SETUSER resc \"")
	return nil
}

// gatedAPI answers /p/<id> with {"name": "widget"}, /p/bad with 404, and
// /p/slow... only once released (or never, to a client that goes away).
type gatedAPI struct {
	*httptest.Server
	release chan struct{}
	once    sync.Once
}

func newGatedAPI(t *testing.T) *gatedAPI {
	a := &gatedAPI{release: make(chan struct{})}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/p/")
		switch {
		case id == "bad":
			http.Error(w, "no such product", http.StatusNotFound)
			return
		case strings.HasPrefix(id, "slow"):
			select {
			case <-a.release:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprint(w, `{"name": "widget"}`)
	}))
	t.Cleanup(a.Close)
	t.Cleanup(a.open)
	return a
}

func (a *gatedAPI) open() { a.once.Do(func() { close(a.release) }) }

// killHolder waits until one of two replicas holds what (holds(id)), kills
// it with SIGKILL, removes it from replicas and returns its id and the
// other's.
func killHolder(replicas map[string]*proctest.Process, what string, holds func(id string) bool) (victim, survivor string) {
	var first *proctest.Process
	for _, p := range replicas {
		first = p
	}
	first.Eventually(10*time.Second, what+" taken", func() (bool, string) {
		for id := range replicas {
			if holds(id) {
				victim = id
				return true, ""
			}
		}
		return false, "in no taken list"
	})
	replicas[victim].Kill()
	<-replicas[victim].Done()
	delete(replicas, victim)
	for id := range replicas {
		survivor = id
	}
	return victim, survivor
}

// TestMinimalACLOverTLS: replicas, the leader's recovery of a killed
// replica, the Go worker SDK, `resc status`, `resc dead list|requeue`
// and the console all work as a user restricted to the ACL rule of
// docs/redis.md, over mutual TLS, the password read from a file named by
// the environment; the password shows nowhere. Then a permission taken
// away stops the replica with exit code 2, naming the command refused
// inside the commit script.
func TestMinimalACLOverTLS(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := redistest.StartTLS(t, "yes")
	admin := srv.Client() // the default user, on the plain port
	var b [12]byte
	_, _ = rand.Read(b[:])
	password := "acl-PLANTED-" + hex.EncodeToString(b[:])
	if err := admin.Do(ctx, documentedACL(t, password)...).Err(); err != nil {
		t.Fatalf("the documented ACL rule: %v", err)
	}
	pwFile := testutil.WriteFile(t, "redis-password", password+"\n")
	api := newGatedAPI(t)
	f := srv.Files
	cfg := testutil.WriteFile(t, "resc.hjson", `{
  redis: {
    url: "`+srv.TLSURL()+`"
    username: resc
    tls: { ca_file: "`+f.CA+`", cert_file: "`+f.ClientCert+`", key_file: "`+f.ClientKey+`" }
  }
  listener_channel: events
  listener_stream: global/events
  cluster: { heartbeat_interval_ms: 200, dead_after_ms: 1000, scan_interval_ms: 200, leader_ttl_ms: 1000 }
  watchers: [{
    input_queue: global/done
    taken_queue: global/taken
    rules: [
      { name: "trt", on: "^acq/(?P<plant>\\w+)/(?P<product>\\w+)$", fetch: [{ url: "`+api.URL+`/p/${product}", returns: "p" }],
        make: { task: "trt/${plant}/${product}", queue: "trt/${plant}/todo", set: "trt/${plant}/todo-set" } }
      { name: "report", on: "^trt/(?P<plant>\\w+)/(?P<product>\\w+)$",
        make: [{ task: "report/${plant}/${product}", queue: "report/todo" }, { task: "${plant}", queue: "stats/plants", set: "stats/plants-set" }] }
    ]
  }]
}`)
	env := []string{"RESC_REDIS_PASSWORD_FILE=" + pwFile, "RESC_LOG=info"}
	replicas, wc := startRestricted(t, cfg, env, pwFile, "r1", "r2")
	// The worker SDK, in this process, as the same user.
	w, err := worker.New(wc, worker.Options{ID: "w1", Block: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Handle("trt/p/todo", func(context.Context, worker.Task) error { return nil }, worker.WithSet("trt/p/todo-set"), worker.WithDone("global/done")); err != nil {
		t.Fatal(err)
	}
	wctx, stopWorker := context.WithCancel(ctx)
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()

	// A slow event held by a replica that is then killed: the leader
	// replays it, and its tasks are made once.
	if err := admin.LPush(ctx, "global/done", "acq/p/slow1").Err(); err != nil {
		t.Fatal(err)
	}
	_, survivorID := killHolder(replicas, "the slow event", func(id string) bool {
		return slices.Contains(admin.LRange(ctx, "global/taken/"+id, 0, -1).Val(), "acq/p/slow1")
	})
	survivor := replicas[survivorID]
	api.open()
	events := []string{"acq/p/1", "acq/p/2", "acq/p/3", "acq/p/bad"}
	if err := admin.LPush(ctx, "global/done", events).Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"report/p/1", "report/p/2", "report/p/3", "report/p/slow1"}
	survivor.Eventually(20*time.Second, "every report task", func() (bool, string) {
		got := admin.LRange(ctx, "report/todo", 0, -1).Val()
		slices.Sort(got)
		return slices.Equal(got, want), fmt.Sprintf("report/todo %q", got)
	})
	survivor.Eventually(10*time.Second, "the refused fetch's dead letter", func() (bool, string) {
		n := admin.LLen(ctx, "global/done/dead").Val()
		return n == 1, fmt.Sprintf("%d dead letters", n)
	})
	if got := admin.LRange(ctx, "stats/plants", 0, -1).Val(); !slices.Equal(got, []string{"p"}) {
		t.Errorf("stats/plants = %q, want [p] (deduplicated)", got)
	}
	if n := admin.XLen(ctx, "global/events").Val(); n == 0 {
		t.Error("the listener stream is empty")
	}

	// The operators' commands, as the same user.
	outputs := map[string]string{}
	for _, args := range [][]string{{"status", cfg}, {"status", "--json", cfg}, {"dead", "list", cfg}, {"dead", "requeue", "--all", cfg}} {
		c := proctest.Start(t, env, args...)
		if code := c.Wait(20 * time.Second); code != 0 {
			t.Errorf("resc %v: exit %d\n%s", args, code, c.Stderr())
		}
		outputs["resc "+strings.Join(args[:len(args)-1], " ")] = c.Stdout() + c.Stderr()
	}
	if !strings.Contains(outputs["resc status"], "alive,leader") || !strings.Contains(outputs["resc dead requeue --all"], "requeued 1") {
		t.Errorf("status or requeue did not work:\n%s\n%s", outputs["resc status"], outputs["resc dead requeue --all"])
	}
	uiAddr := testutil.FreePort(t)
	ui := proctest.Start(t, env, "ui", "--http-addr", uiAddr, cfg)
	ui.WaitLog(20*time.Second, "console: http://")
	for _, page := range []string{"/ui/", "/ui/dead"} {
		resp, err := http.Get("http://" + uiAddr + page)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("console %s: %s", page, resp.Status)
		}
	}
	ui.Stop(10 * time.Second)
	outputs["resc ui"] = ui.Stdout() + ui.Stderr()

	stopWorker()
	if err := <-werr; err != nil {
		t.Errorf("worker: %v", err)
	}

	// A permission taken away: the next commit's XADD is refused inside
	// the script, and the replica stops saying so.
	if err := admin.Do(ctx, "ACL", "SETUSER", "resc", "-xadd").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.LPush(ctx, "global/done", "acq/p/4").Err(); err != nil {
		t.Fatal(err)
	}
	if code := survivor.Wait(20 * time.Second); code != 2 {
		t.Errorf("replica without +xadd: exit %d, want 2\n%s", code, survivor.Stderr())
	}
	if !regexp.MustCompile(`may not run XADD \(on global/events\): add \+xadd`).MatchString(survivor.Stderr()) {
		t.Errorf("replica without +xadd: the log does not name XADD:\n%s", survivor.Stderr())
	}
	if n := admin.LLen(ctx, "global/taken/"+survivorID).Val() +
		admin.LLen(ctx, "global/done").Val(); n != 1 {
		t.Errorf("acq/p/4 is in %d of the input queue and the taken list, want 1 (not lost)", n)
	}

	for _, p := range replicas {
		outputs["replica logs"] += p.Stdout() + p.Stderr()
	}
	for what, out := range outputs {
		if strings.Contains(out, password) {
			t.Errorf("%s shows the Redis password", what)
		}
	}
}

// startRestricted starts the replicas ids of cfg with env (which names the
// password file pwFile), and returns them and a client of the same user
// for the worker SDK: the go-redis client itself, by whose type the SDK
// tells a cluster.
func startRestricted(t *testing.T, cfg string, env []string, pwFile string, ids ...string) (map[string]*proctest.Process, redis.UniversalClient) {
	t.Helper()
	replicas := map[string]*proctest.Process{}
	for _, id := range ids {
		p := proctest.Start(t, env, "run", "--replica-id", id, "--http-addr", "off", cfg)
		p.WaitLog(20*time.Second, "resc-go started")
		replicas[id] = p
	}
	loaded, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := redisconn.Open(t.Context(), redisconn.Options{URL: loaded.RedisURL, Settings: loaded.Redis,
		Getenv: func(k string) string { return map[string]string{redisconn.EnvPasswordFile: pwFile}[k] }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wc.Close() })
	return replicas, wc.UniversalClient
}

// documentedClusterACL is the cluster addition of docs/redis.md: the line
// starting "ACL SETUSER resc +cluster".
func documentedClusterACL(t *testing.T) []any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "redis.md"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "ACL SETUSER resc +cluster") {
			var args []any
			for _, w := range strings.Fields(line) {
				args = append(args, w)
			}
			return args
		}
	}
	t.Fatal(`docs/redis.md has no line starting with "ACL SETUSER resc +cluster"`)
	return nil
}

// TestMinimalACLOverTLSCluster: on a 3-master Redis Cluster over mutual
// TLS (client connections, bus and replication), as a user restricted to
// the ACL rule of docs/redis.md plus its cluster addition (set on every
// node) and the test's tagged key patterns: two replicas with watchers on
// two masters, a kill -9 of the one holding an event and the leader's
// replay, the Go worker SDK completing tasks, and `resc status`.
func TestMinimalACLOverTLSCluster(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cl := redistest.StartTLSCluster(t, 3, 0, "yes")
	if config.Slot("{a}")/5462 == config.Slot("{b}")/5462 {
		t.Fatal("{a} and {b} fall on the same master: pick other tags")
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	password := "acl-PLANTED-" + hex.EncodeToString(b[:])
	for _, n := range cl.Nodes {
		node := n.Client() // the default user, on the plain port
		for _, rule := range [][]any{documentedACL(t, password), documentedClusterACL(t), {"ACL", "SETUSER", "resc", "~{a}/*", "~{b}/*"}} {
			if err := node.Do(ctx, rule...).Err(); err != nil {
				t.Fatalf("%s: %v: %v", n.Addr(), rule, err)
			}
		}
	}
	admin := cl.Client() // the default user, plain ports
	pwFile := testutil.WriteFile(t, "redis-password", password+"\n")
	api := newGatedAPI(t)
	f := cl.Files
	seeds := cl.TLSURL(0) + "?addr=127.0.0.1:" + strconv.Itoa(cl.TLSPorts[1]) + "&addr=127.0.0.1:" + strconv.Itoa(cl.TLSPorts[2])
	cfg := testutil.WriteFile(t, "resc.hjson", `{
  redis: {
    url: "`+seeds+`"
    username: resc
    tls: { ca_file: "`+f.CA+`", cert_file: "`+f.ClientCert+`", key_file: "`+f.ClientKey+`" }
  }
  cluster: { heartbeat_interval_ms: 200, dead_after_ms: 1000, scan_interval_ms: 200, leader_ttl_ms: 1000 }
  watchers: [
    { input_queue: "{a}/in", rules: [{ name: "a", on: "^e/(?P<n>\\w+)$", fetch: [{ url: "`+api.URL+`/p/${n}", returns: "p" }],
        make: { task: "t/${n}", queue: "{a}/todo", set: "{a}/todo-set" } }] }
    { input_queue: "{b}/in", rules: [{ name: "b", on: "^e/(?P<n>\\w+)$", make: { task: "t/${n}", queue: "{b}/todo", set: "{b}/todo-set" } }] }
  ]
}`)
	env := []string{"RESC_REDIS_PASSWORD_FILE=" + pwFile, "RESC_LOG=info"}
	replicas, wc := startRestricted(t, cfg, env, pwFile, "c1", "c2")
	w, err := worker.New(wc, worker.Options{ID: "w1", Block: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Handle("{b}/todo", func(context.Context, worker.Task) error { return nil }, worker.WithSet("{b}/todo-set"), worker.WithDone("{b}/done")); err != nil {
		t.Fatal(err)
	}
	wctx, stopWorker := context.WithCancel(ctx)
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()

	if err := admin.LPush(ctx, "{a}/in", "e/slow1").Err(); err != nil {
		t.Fatal(err)
	}
	_, survivorID := killHolder(replicas, "the slow event", func(id string) bool {
		return admin.LLen(ctx, "{a}/in/taken/"+id).Val() > 0
	})
	survivor := replicas[survivorID]
	api.open()
	var events []any
	for i := range 20 {
		events = append(events, "e/"+strconv.Itoa(i))
	}
	for _, q := range []string{"{a}/in", "{b}/in"} {
		if err := admin.LPush(ctx, q, events...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	survivor.Eventually(30*time.Second, "every task made, the worker's completed", func() (bool, string) {
		a, d := admin.LLen(ctx, "{a}/todo").Val(), admin.LLen(ctx, "{b}/done").Val()
		return a == 21 && d == 20, fmt.Sprintf("{a}/todo %d of 21, {b}/done %d of 20", a, d)
	})
	for q, n := range map[string]int{"{a}/todo": 21, "{b}/done": 20} {
		got := admin.LRange(ctx, q, 0, -1).Val()
		slices.Sort(got)
		if len(slices.Compact(got)) != n {
			t.Errorf("%s: %d distinct, want %d (each once)", q, len(got), n)
		}
	}
	c := proctest.Start(t, env, "status", cfg)
	if code := c.Wait(20 * time.Second); code != 0 || !strings.Contains(c.Stdout(), "alive,leader") {
		t.Errorf("resc status: exit %d\n%s%s", code, c.Stdout(), c.Stderr())
	}
	stopWorker()
	if err := <-werr; err != nil {
		t.Errorf("worker: %v", err)
	}
	logs := survivor.Stderr() + c.Stdout() + c.Stderr()
	if strings.Contains(logs, "may not run") || strings.Contains(logs, "NOPERM") {
		t.Errorf("a permission was missing:\n%s", logs)
	}
	if strings.Contains(logs, password) {
		t.Error("the logs show the Redis password")
	}
}
