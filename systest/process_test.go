package systest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// The tests of this file run the resc binary (internal/proctest) as a
// real process: signals, exit codes and the environment are the user's.

// listIs is a condition for Eventually: the list key holds want, in any
// order.
func listIs(t *testing.T, rdb *redis.Client, key string, want ...string) func() (bool, string) {
	return func() (bool, string) {
		got := testutil.List(t, rdb, key)
		a, b := slices.Clone(got), slices.Clone(want)
		slices.Sort(a)
		slices.Sort(b)
		return slices.Equal(a, b), fmt.Sprintf("%s = %q", key, got)
	}
}

// procConfig is the configuration of the process tests: watcher "in" with
// a plain rule (acq/N makes trt/N in trt/todo) and a fetch rule (prod/N
// makes made/N/<name> in made/todo, name being fetched from fetchBase/p/N).
func procConfig(t *testing.T, redisURL, fetchBase string) string {
	t.Helper()
	return testutil.WriteFile(t, "resc.hjson", procConfigText(redisURL, fetchBase, "", ""))
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
	t       *testing.T
	entered chan string   // receives the path of each request, when it arrives
	release chan struct{} // closed to let the handlers answer
	once    sync.Once
}

func newHeldAPI(t *testing.T) *heldAPI {
	h := &heldAPI{t: t, entered: make(chan string, 16), release: make(chan struct{})}
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
func (h *heldAPI) waitEntered(p *proctest.Process, timeout time.Duration) string {
	h.t.Helper()
	select {
	case path := <-h.entered:
		return path
	case <-p.Done():
		p.Fatalf("resc exited (code %d) before fetching", p.ExitCode())
	case <-time.After(timeout):
		p.Fatalf("no fetch request within %v", timeout)
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
	p := proctest.Start(t, nil, "run", "--replica-id", "r1", "--http-addr", "127.0.0.1:0", "--drain-timeout", drain.String(), cfg)

	if err := rdb.LPush(t.Context(), "in", "prod/7").Err(); err != nil {
		t.Fatal(err)
	}
	if path := api.waitEntered(p, 10*time.Second); path != "/p/7" {
		p.Fatalf("fetch of %q, want /p/7", path)
	}
	testutil.AssertList(t, rdb, "in/taken/r1", "prod/7") // in flight, in r1's taken list

	p.Signal(syscall.SIGTERM)
	// Released only once resc has seen the signal, so that the event is
	// finished by the drain and not before it.
	p.WaitLog(5*time.Second, "stopping: no more taking")
	start := time.Now()
	api.Release()
	if code := p.Wait(drain + 5*time.Second); code != 0 {
		p.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if took := time.Since(start); took > drain {
		p.Fatalf("exit took %v after the release, more than the drain timeout %v", took, drain)
	}

	testutil.AssertList(t, rdb, "made/todo", "made/7/widget")
	testutil.AssertList(t, rdb, "in/taken/r1")
	testutil.AssertList(t, rdb, "in")
	testutil.AssertList(t, rdb, "in/dead")
	if !strings.Contains(p.Stderr(), "resc-go stopped") {
		p.Fatalf("no \"resc-go stopped\" in the log")
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
	p := proctest.Start(t, nil, "run", "--replica-id", "r1", "--http-addr", "off", "--drain-timeout", drain.String(), cfg)

	if err := rdb.LPush(t.Context(), "in", "prod/7").Err(); err != nil {
		t.Fatal(err)
	}
	api.waitEntered(p, 10*time.Second)
	testutil.AssertList(t, rdb, "in/taken/r1", "prod/7")

	start := time.Now()
	p.Stop(drain + 5*time.Second)
	if took := time.Since(start); took < drain {
		p.Fatalf("exit %v after SIGTERM, before the drain timeout %v, with an event in flight", took, drain)
	}
	testutil.AssertList(t, rdb, "in", "prod/7")
	testutil.AssertList(t, rdb, "in/taken/r1")
	testutil.AssertList(t, rdb, "made/todo")
	testutil.AssertList(t, rdb, "in/dead")
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
	addr := testutil.FreePort(t)
	cfg := procConfig(t, srv.URL(), "http://127.0.0.1:1")
	p := proctest.Start(t, nil, "run", "--replica-id", "h1", "--http-addr", addr, cfg)
	base := "http://" + addr

	p.Eventually(10*time.Second, "/healthz 200", statusIs(base+"/healthz", 200))
	p.Eventually(5*time.Second, "/readyz 200", statusIs(base+"/readyz", 200))

	srv.Stop()
	p.Eventually(10*time.Second, "/readyz 503 with Redis stopped", statusIs(base+"/readyz", 503))
	if got := get(base + "/healthz"); got != 200 {
		p.Fatalf("/healthz with Redis stopped: status %d, want 200 (the process is alive)", got)
	}

	srv.Restart()
	p.Eventually(10*time.Second, "/readyz 200 with Redis back", statusIs(base+"/readyz", 200))
	// The watcher came back too.
	if err := rdb.LPush(t.Context(), "in", "acq/1").Err(); err != nil {
		t.Fatal(err)
	}
	p.Eventually(10*time.Second, "the task of an event pushed after the outage", listIs(t, rdb, "trt/todo", "trt/1"))

	p.Stop(10 * time.Second)
}

// TestRescForm: `resc CONFIG`, resc's own form, runs with the replica id and
// the Redis URL of the environment, the latter overriding the configuration.
func TestRescForm(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	closed := "redis://" + testutil.FreePort(t) + "/0" // nobody listens there
	cfg := procConfig(t, closed, "http://127.0.0.1:1")
	// An event left by an earlier run of replica form1: replayed at start
	// only if the replica id is the environment's.
	if err := rdb.RPush(t.Context(), "in/taken/form1", "acq/1").Err(); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, []string{"RESC_REPLICA_ID=form1", "RESC_REDIS_URL=" + srv.URL(), "RESC_HTTP_ADDR=off"}, cfg)

	if err := rdb.LPush(t.Context(), "in", "acq/2").Err(); err != nil {
		t.Fatal(err)
	}
	p.Eventually(10*time.Second, "both events handled", listIs(t, rdb, "trt/todo", "trt/1", "trt/2"))
	testutil.AssertList(t, rdb, "in/taken/form1")
	testutil.AssertList(t, rdb, "in")
	if log := p.Stderr(); !strings.Contains(log, "replica=form1") {
		p.Fatalf("no replica=form1 in the log")
	}
	p.Stop(10 * time.Second)
}

// TestEmbeddedAuto: with --embedded=auto and nothing listening at the
// loopback URL of the configuration, an in-memory server takes its place,
// and the binary's own push reaches it.
func TestEmbeddedAuto(t *testing.T) {
	t.Parallel()
	url := "redis://" + testutil.FreePort(t) + "/0"
	cfg := procConfig(t, url, "http://127.0.0.1:1")
	p := proctest.Start(t, nil, "run", "--embedded=auto", "--replica-id", "e1", "--http-addr", "off", cfg)

	p.WaitLog(10*time.Second, "then:")
	log := p.Stderr()
	for _, want := range []string{"EMBEDDED in-memory Redis", "try it:", "push --redis-url " + url + " in acq/plantA/42"} {
		if !strings.Contains(log, want) {
			p.Fatalf("no %q in stderr", want)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, proctest.Binary(t), "push", "--redis-url", url, "in", "acq/5").CombinedOutput()
	if err != nil {
		p.Fatalf("resc push: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "pushed 1 event(s) to in") {
		p.Fatalf("resc push printed %q", out)
	}

	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	p.Eventually(10*time.Second, "the task in the embedded server", listIs(t, rdb, "trt/todo", "trt/5"))
	p.Stop(10 * time.Second)
}

// TestRefusesBadConfig: `resc run` on a broken configuration lists every
// problem and exits 1 without connecting to Redis.
func TestRefusesBadConfig(t *testing.T) {
	t.Parallel()
	addr, assertNoConnection := testutil.SilentListener(t)
	url := "redis://" + addr + "/0"
	cfg := testutil.WriteFile(t, "bad.hjson", `{
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
	p := proctest.Start(t, nil, "run", "--replica-id", "b1", "--http-addr", "off", cfg)
	if code := p.Wait(10 * time.Second); code != 1 {
		p.Fatalf("exit code %d, want 1", code)
	}
	stderr := p.Stderr()
	for _, want := range []string{
		cfg + `: watchers[0].rules[0].on (rule "bad-re"): invalid regular expression`,
		cfg + `: watchers[0].rules[1].make.task (rule "undef"): unknown variable ${nope}`,
		"resc: 2 problem(s) in the configuration\n",
	} {
		if !strings.Contains(stderr, want) {
			p.Fatalf("no %q in stderr", want)
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
	p := proctest.Start(t, nil, "run", "--replica-id", "r1", "--http-addr", "off", cfg)

	p.Eventually(10*time.Second, "the replayed events handled", listIs(t, rdb, "trt/todo", "trt/9", "trt/1", "trt/2", "trt/3"))
	testutil.AssertList(t, rdb, "in/taken/r1")
	testutil.AssertList(t, rdb, "in/taken/other")
	p.Stop(10 * time.Second)
}

// TestVersionProcess: the binary prints its version, and exits 2 on a bad
// command line, as a shell sees it.
func TestVersionProcess(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(proctest.Binary(t), "--version").Output()
	if err != nil || string(out) != "resc-go dev\n" {
		t.Errorf("resc --version: %q, %v; want \"resc-go dev\\n\"", out, err)
	}
	p := proctest.Start(t, nil)
	if code := p.Wait(10 * time.Second); code != 2 {
		p.Fatalf("resc without arguments: exit code %d, want 2", code)
	}
	p = proctest.Start(t, nil, "frobnicate", "x")
	if code := p.Wait(10 * time.Second); code != 2 {
		p.Fatalf("resc frobnicate: exit code %d, want 2", code)
	}
	if !strings.Contains(p.Stderr(), `resc: unknown command "frobnicate"`) {
		p.Fatalf("no unknown command message")
	}
}
