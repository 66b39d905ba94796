package systest

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// TestConsoleProcesses: a replica started with --ui and a stand-alone
// `resc ui` serve the same overview: the replica, and the tasks it pushed
// (from the counters it publishes). Without Chromium, over plain HTTP.
func TestConsoleProcesses(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	rdb := rs.Client()
	cfg := testutil.WriteFile(t, "resc.hjson", `{redis: {url: "`+rs.URL()+`"},
		watchers: [{input_queue: "events", rules: [{name: "acq", on: "^acq/(?P<n>\\d+)$", make: {queue: "todo"}}]}]}`)
	repAddr, uiAddr := testutil.FreePort(t), testutil.FreePort(t)
	rep := proctest.Start(t, []string{"RESC_UI=1"}, "run", "--http-addr", repAddr, "--replica-id", "proc-1", cfg)
	rep.WaitLog(20*time.Second, "console: http://"+repAddr+"/ui/")
	ui := proctest.Start(t, []string{"RESC_UI_ADDR=" + uiAddr, "RESC_UI_INTERVAL=200ms"}, "ui", cfg)
	ui.WaitLog(20*time.Second, "console: http://"+uiAddr+"/ui/")
	if !strings.Contains(ui.Stderr(), "read-only") {
		t.Errorf("resc ui without a token does not say it is read-only:\n%s", ui.Stderr())
	}
	for i := range 7 {
		rdb.LPush(t.Context(), "events", "acq/"+string(rune('0'+i)))
	}
	for _, addr := range []string{repAddr, uiAddr} {
		var body string
		ok, _ := testutil.Poll(15*time.Second, func() (bool, string) {
			resp, err := http.Get("http://" + addr + "/ui/?fragment=1")
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return resp.StatusCode == 200 && strings.Contains(body, `<tr data-replica="proc-1">`) &&
				strings.Contains(body, `<tr data-task-queue="todo"><td><code>todo</code></td><td class="num">7</td>`), ""
		})
		if !ok {
			t.Errorf("the console at %s does not show the replica and its 7 tasks:\n%s", addr, body)
		}
	}
}

// TestConsoleAutoToken: RESC_UI_TOKEN=auto (what `make run` sets) makes a
// token up and prints it beside the address; that token opens a session,
// another is refused.
func TestConsoleAutoToken(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	cfg := testutil.WriteFile(t, "resc.hjson", `{redis: {url: "`+rs.URL()+`"},
		watchers: [{input_queue: "events", rules: [{on: "^acq$", make: {queue: "todo"}}]}]}`)
	uiAddr := testutil.FreePort(t)
	ui := proctest.Start(t, []string{"RESC_UI_ADDR=" + uiAddr, "RESC_UI_TOKEN=auto"}, "ui", cfg)
	ui.WaitLog(20*time.Second, "(made up for this run")
	m := regexp.MustCompile(`log in with the token ([0-9a-f]{24}) `).FindStringSubmatch(ui.Stderr())
	if m == nil {
		t.Fatalf("no made-up token printed:\n%s", ui.Stderr())
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for token, want := range map[string]int{m[1]: http.StatusSeeOther, "auto": http.StatusUnauthorized, strings.Repeat("0", 24): http.StatusUnauthorized} {
		resp, err := noRedirect.PostForm("http://"+uiAddr+"/ui/login", url.Values{"token": {token}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		session := false
		for _, c := range resp.Cookies() {
			session = session || (c.Value != "" && c.MaxAge >= 0)
		}
		if resp.StatusCode != want || session != (want == http.StatusSeeOther) {
			t.Errorf("login with %q: status %d, session cookie %v; want %d", token, resp.StatusCode, session, want)
		}
	}
}
