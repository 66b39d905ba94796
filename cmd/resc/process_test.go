package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// The tests of this file run the resc binary, built once by TestMain, as a
// real process: signals, exit codes and the environment are the user's.

// rescBin is the binary built by TestMain.
var rescBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "resc-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot make a directory for the resc binary:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "the process tests need the go command to build resc:", err)
		return 1
	}
	rescBin = filepath.Join(dir, "resc")
	// Without -race, whatever the test binary has: the build stays fast.
	build := exec.Command(goTool, "build", "-o", rescBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building resc for the process tests failed: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// proc is a running resc process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout testutil.Buffer
	stderr testutil.Buffer
	done   chan struct{} // closed when the process has exited
}

// baseEnv is the test's environment without the variables resc reads, plus
// RESC_LOG=info, so that the tests can follow the process in its log.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RESC_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return append(env, "RESC_LOG=info")
}

// startResc starts resc with args and the extra environment env. The
// process is killed at the end of the test if it is still running.
func startResc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(rescBin, args...)
	p.cmd.Env = append(baseEnv(), env...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting resc: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Logf("resc %q was killed at the end of the test; its stderr:\n%s", args, p.stderr.String())
	})
	return p
}

// fatalf fails the test with the process's stderr.
func (p *proc) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("%s\nresc stderr:\n%s", fmt.Sprintf(format, args...), p.stderr.String())
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit, up to timeout, and returns its exit
// code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		p.fatalf("resc did not exit within %v", timeout)
		return -1
	}
}

// stop sends SIGTERM and checks that the process exits 0 within timeout.
func (p *proc) stop(timeout time.Duration) {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(timeout); code != 0 {
		p.fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// eventually polls cond every 10 ms until it holds, failing the test with
// what, cond's last description and the process's stderr after timeout.
// It stops early when the process exits.
func (p *proc) eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			p.fatalf("after %v: want %s; got %s", timeout, what, state)
		}
		select {
		case <-tick.C:
		case <-p.done:
			if ok, state = cond(); ok {
				return
			}
			p.fatalf("resc exited (code %d) before %s; got %s", p.cmd.ProcessState.ExitCode(), what, state)
		}
	}
}

// waitLog waits until the process's stderr contains s.
func (p *proc) waitLog(timeout time.Duration, s string) {
	p.t.Helper()
	p.eventually(timeout, fmt.Sprintf("stderr containing %q", s), func() (bool, string) {
		return strings.Contains(p.stderr.String(), s), "not yet"
	})
}

// list returns the content of a Redis list, failing the test on an error.
func list(t *testing.T, rdb *redis.Client, key string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	l, err := rdb.LRange(ctx, key, 0, -1).Result()
	if err != nil {
		t.Fatalf("LRANGE %s: %v", key, err)
	}
	return l
}

// listIs is a condition for eventually: the list key holds want, in any
// order.
func listIs(t *testing.T, rdb *redis.Client, key string, want ...string) func() (bool, string) {
	return func() (bool, string) {
		got := list(t, rdb, key)
		a, b := slices.Clone(got), slices.Clone(want)
		slices.Sort(a)
		slices.Sort(b)
		return slices.Equal(a, b), fmt.Sprintf("%s = %q", key, got)
	}
}

// assertList checks the content of a list, in order.
func assertList(t *testing.T, rdb *redis.Client, key string, want ...string) {
	t.Helper()
	if got := list(t, rdb, key); !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", key, got, want)
	}
}

// freePort is a loopback TCP port nobody listened on a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// procConfig is the configuration of the process tests: watcher "in" with
// a plain rule (acq/N makes trt/N in trt/todo) and a fetch rule (prod/N
// makes made/N/<name> in made/todo, name being fetched from fetchBase/p/N).
func procConfig(t *testing.T, redisURL, fetchBase string) string {
	t.Helper()
	return writeConfig(t, "resc.hjson", procConfigText(redisURL, fetchBase, "", ""))
}

// procConfigText is procConfig's text, with the top-level keys top and the
// watcher keys watcherKeys added (one a line, or "").
func procConfigText(redisURL, fetchBase, top, watcherKeys string) string {
	return `{
  redis: { url: "` + redisURL + `" }
  ` + top + `
  watchers: [
    {
      input_queue: in
      ` + watcherKeys + `
      rules: [
        {
          name: plain
          on: "^acq/(?P<id>\\d+)$"
          make: { task: "trt/${id}", queue: "trt/todo" }
        }
        {
          name: enrich
          on: "^prod/(?P<id>\\d+)$"
          fetch: [ { url: "` + fetchBase + `/p/${id}", returns: "p" } ]
          make: { task: "made/${id}/${p.name}", queue: "made/todo" }
        }
      ]
    }
  ]
}
`
}

// heldAPI is an HTTP server for fetch rules whose handler is held until
// the test releases it.
type heldAPI struct {
	*httptest.Server
	entered chan string   // receives the path of each request, when it arrives
	release chan struct{} // closed to let the handlers answer
	once    sync.Once
}

func newHeldAPI(t *testing.T) *heldAPI {
	h := &heldAPI{entered: make(chan string, 16), release: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case h.entered <- r.URL.Path:
		default:
		}
		select {
		case <-h.release:
		case <-r.Context().Done(): // the client gave up
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name": "widget"}`)
	}))
	t.Cleanup(h.Close)
	t.Cleanup(h.Release) // before Close, which waits for the handlers
	return h
}

// Release lets every held and future request answer.
func (h *heldAPI) Release() { h.once.Do(func() { close(h.release) }) }

// waitEntered waits for a request to arrive and returns its path.
func (h *heldAPI) waitEntered(p *proc, timeout time.Duration) string {
	p.t.Helper()
	select {
	case path := <-h.entered:
		return path
	case <-p.done:
		p.fatalf("resc exited (code %d) before fetching", p.cmd.ProcessState.ExitCode())
	case <-time.After(timeout):
		p.fatalf("no fetch request within %v", timeout)
	}
	return ""
}

// TestSIGTERM: an event in flight (its fetch under way) when SIGTERM comes
// is finished, and the process exits 0 within the drain timeout.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	api := newHeldAPI(t)
	cfg := procConfig(t, srv.URL(), api.URL)
	const drain = 10 * time.Second
	p := startResc(t, nil, "run", "--replica-id", "r1", "--http-addr", "127.0.0.1:0", "--drain-timeout", drain.String(), cfg)

	if err := rdb.LPush(t.Context(), "in", "prod/7").Err(); err != nil {
		t.Fatal(err)
	}
	if path := api.waitEntered(p, 10*time.Second); path != "/p/7" {
		p.fatalf("fetch of %q, want /p/7", path)
	}
	assertList(t, rdb, "in/taken/r1", "prod/7") // in flight, in r1's taken list

	p.signal(syscall.SIGTERM)
	// Released only once resc has seen the signal, so that the event is
	// finished by the drain and not before it.
	p.waitLog(5*time.Second, "stopping: no more taking")
	start := time.Now()
	api.Release()
	if code := p.wait(drain + 5*time.Second); code != 0 {
		p.fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if took := time.Since(start); took > drain {
		p.fatalf("exit took %v after the release, more than the drain timeout %v", took, drain)
	}

	assertList(t, rdb, "made/todo", "made/7/widget")
	assertList(t, rdb, "in/taken/r1")
	assertList(t, rdb, "in")
	assertList(t, rdb, "in/dead")
	if !strings.Contains(p.stderr.String(), "resc-go stopped") {
		p.fatalf("no \"resc-go stopped\" in the log")
	}
}

// TestSIGTERMHandsBack: an event still in flight at the end of the drain
// timeout goes back to the input queue, and the process exits 0.
func TestSIGTERMHandsBack(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	api := newHeldAPI(t) // never released before the end
	cfg := procConfig(t, srv.URL(), api.URL)
	const drain = 200 * time.Millisecond
	p := startResc(t, nil, "run", "--replica-id", "r1", "--http-addr", "off", "--drain-timeout", drain.String(), cfg)

	if err := rdb.LPush(t.Context(), "in", "prod/7").Err(); err != nil {
		t.Fatal(err)
	}
	api.waitEntered(p, 10*time.Second)
	assertList(t, rdb, "in/taken/r1", "prod/7")

	start := time.Now()
	p.stop(drain + 5*time.Second)
	if took := time.Since(start); took < drain {
		p.fatalf("exit %v after SIGTERM, before the drain timeout %v, with an event in flight", took, drain)
	}
	assertList(t, rdb, "in", "prod/7")
	assertList(t, rdb, "in/taken/r1")
	assertList(t, rdb, "made/todo")
	assertList(t, rdb, "in/dead")
}

// get GETs url and returns the status code, or 0 when the request fails.
func get(url string) int {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func statusIs(url string, want int) func() (bool, string) {
	return func() (bool, string) {
		got := get(url)
		return got == want, fmt.Sprintf("GET %s: status %d", url, got)
	}
}

// TestHealthAndReady: /healthz answers while the process runs, /readyz
// follows Redis going away and coming back, and the watcher resumes.
func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	addr := freePort(t)
	cfg := procConfig(t, srv.URL(), "http://127.0.0.1:1")
	p := startResc(t, nil, "run", "--replica-id", "h1", "--http-addr", addr, cfg)
	base := "http://" + addr

	p.eventually(10*time.Second, "/healthz 200", statusIs(base+"/healthz", 200))
	p.eventually(5*time.Second, "/readyz 200", statusIs(base+"/readyz", 200))

	srv.Stop()
	p.eventually(10*time.Second, "/readyz 503 with Redis stopped", statusIs(base+"/readyz", 503))
	if got := get(base + "/healthz"); got != 200 {
		p.fatalf("/healthz with Redis stopped: status %d, want 200 (the process is alive)", got)
	}

	srv.Restart()
	p.eventually(10*time.Second, "/readyz 200 with Redis back", statusIs(base+"/readyz", 200))
	// The watcher came back too.
	if err := rdb.LPush(t.Context(), "in", "acq/1").Err(); err != nil {
		t.Fatal(err)
	}
	p.eventually(10*time.Second, "the task of an event pushed after the outage", listIs(t, rdb, "trt/todo", "trt/1"))

	p.stop(10 * time.Second)
}

// TestRescForm: `resc CONFIG`, resc's own form, runs with the replica id and
// the Redis URL of the environment, the latter overriding the configuration.
func TestRescForm(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	closed := "redis://" + freePort(t) + "/0" // nobody listens there
	cfg := procConfig(t, closed, "http://127.0.0.1:1")
	// An event left by an earlier run of replica form1: replayed at start
	// only if the replica id is the environment's.
	if err := rdb.RPush(t.Context(), "in/taken/form1", "acq/1").Err(); err != nil {
		t.Fatal(err)
	}
	p := startResc(t, []string{"RESC_REPLICA_ID=form1", "RESC_REDIS_URL=" + srv.URL(), "RESC_HTTP_ADDR=off"}, cfg)

	if err := rdb.LPush(t.Context(), "in", "acq/2").Err(); err != nil {
		t.Fatal(err)
	}
	p.eventually(10*time.Second, "both events handled", listIs(t, rdb, "trt/todo", "trt/1", "trt/2"))
	assertList(t, rdb, "in/taken/form1")
	assertList(t, rdb, "in")
	if log := p.stderr.String(); !strings.Contains(log, "replica=form1") {
		p.fatalf("no replica=form1 in the log")
	}
	p.stop(10 * time.Second)
}

// TestEmbeddedAuto: with --embedded=auto and nothing listening at the
// loopback URL of the configuration, an in-memory server takes its place,
// and the binary's own push reaches it.
func TestEmbeddedAuto(t *testing.T) {
	t.Parallel()
	url := "redis://" + freePort(t) + "/0"
	cfg := procConfig(t, url, "http://127.0.0.1:1")
	p := startResc(t, nil, "run", "--embedded=auto", "--replica-id", "e1", "--http-addr", "off", cfg)

	p.waitLog(10*time.Second, "then:")
	log := p.stderr.String()
	for _, want := range []string{"EMBEDDED in-memory Redis", "try it:", "push --redis-url " + url + " in acq/plantA/42"} {
		if !strings.Contains(log, want) {
			p.fatalf("no %q in stderr", want)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, rescBin, "push", "--redis-url", url, "in", "acq/5").CombinedOutput()
	if err != nil {
		p.fatalf("resc push: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "pushed 1 event(s) to in") {
		p.fatalf("resc push printed %q", out)
	}

	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	p.eventually(10*time.Second, "the task in the embedded server", listIs(t, rdb, "trt/todo", "trt/5"))
	p.stop(10 * time.Second)
}

// TestRefusesBadConfig: `resc run` on a broken configuration lists every
// problem and exits 1 without connecting to Redis.
func TestRefusesBadConfig(t *testing.T) {
	t.Parallel()
	url, assertNoConnection := silentRedis(t)
	cfg := writeConfig(t, "bad.hjson", `{
  redis: { url: "`+url+`" }
  watchers: [
    {
      input_queue: in
      rules: [
        {
          name: bad-re
          on: "^acq/(?P<id>\\d+"
          make: { queue: "q" }
        }
        {
          name: undef
          on: "^x$"
          make: { task: "t/${nope}", queue: "q" }
        }
      ]
    }
  ]
}
`)
	p := startResc(t, nil, "run", "--replica-id", "b1", "--http-addr", "off", cfg)
	if code := p.wait(10 * time.Second); code != 1 {
		p.fatalf("exit code %d, want 1", code)
	}
	stderr := p.stderr.String()
	for _, want := range []string{
		cfg + `: watchers[0].rules[0].on (rule "bad-re"): invalid regular expression`,
		cfg + `: watchers[0].rules[1].make.task (rule "undef"): unknown variable ${nope}`,
		"resc: 2 problem(s) in the configuration\n",
	} {
		if !strings.Contains(stderr, want) {
			p.fatalf("no %q in stderr", want)
		}
	}
	assertNoConnection()
}

// TestStartupReplayProcess: events left in a replica's taken list by an
// earlier run are handled when a replica with the same id starts, first;
// the taken list of a replica that is not alive is replayed by the leader.
func TestStartupReplayProcess(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := t.Context()
	if err := rdb.RPush(ctx, "in/taken/r1", "acq/1", "acq/2", "acq/3").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.RPush(ctx, "in/taken/other", "acq/9").Err(); err != nil {
		t.Fatal(err)
	}
	cfg := procConfig(t, srv.URL(), "http://127.0.0.1:1")
	p := startResc(t, nil, "run", "--replica-id", "r1", "--http-addr", "off", cfg)

	p.eventually(10*time.Second, "the replayed events handled", listIs(t, rdb, "trt/todo", "trt/9", "trt/1", "trt/2", "trt/3"))
	assertList(t, rdb, "in/taken/r1")
	assertList(t, rdb, "in/taken/other")
	p.stop(10 * time.Second)
}

// TestVersionProcess: the binary prints its version, and exits 2 on a bad
// command line, as a shell sees it.
func TestVersionProcess(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(rescBin, "--version").Output()
	if err != nil || string(out) != "resc-go dev\n" {
		t.Errorf("resc --version: %q, %v; want \"resc-go dev\\n\"", out, err)
	}
	p := startResc(t, nil)
	if code := p.wait(10 * time.Second); code != 2 {
		p.fatalf("resc without arguments: exit code %d, want 2", code)
	}
	p = startResc(t, nil, "frobnicate", "x")
	if code := p.wait(10 * time.Second); code != 2 {
		p.fatalf("resc frobnicate: exit code %d, want 2", code)
	}
	if !strings.Contains(p.stderr.String(), `resc: unknown command "frobnicate"`) {
		p.fatalf("no unknown command message")
	}
}
