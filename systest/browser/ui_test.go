package browser

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// The browser tests drive the console in a real headless Chromium
// (Debian's chromium package, which `make test` installs where it can):
// a replica started with --ui, events pushed, a dead letter requeued and
// processed, actions refused without the token. They write a screenshot
// of every page: into RESC_UI_SCREENSHOTS when set (`make screenshots`
// writes docs/ui/), else into the test's temporary directory.

const uiToken = "browser-test-token-0123456789"

// browser returns a Chromium context, or skips the test saying why.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("SKIPPED: no Chromium on PATH (make test installs Debian's chromium package where it can): the console's browser tests did not run")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1366, 900),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil {
		t.Skipf("SKIPPED: Chromium at %s does not start (%v): the console's browser tests did not run", path, err)
	}
	return ctx
}

// run runs browser actions within a timeout, failing the test with what
// was being done.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// value runs an action that returns a value.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// css is a CSS selector (a plain string would be a DOM search).
type css = chromedp.CSS

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("RESC_UI_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	png := value(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if len(png) < 1000 {
		t.Fatalf("screenshot %s: %d bytes", name, len(png))
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	rs := redistest.Start(t)
	rdb := rs.Client()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such plant", http.StatusNotFound)
	}))
	t.Cleanup(api.Close)
	cfg := testutil.WriteFile(t, "resc.hjson", `{
		redis: {url: "`+rs.URL()+`"},
		watchers: [{input_queue: "events", rules: [
			{name: "treatments", on: "^plant/(?P<p>\\w+)$", fetch: [{url: "`+api.URL+`/plants/${p}", returns: "t"}], make: {queue: "trt/${t.id}"}},
			{name: "acquisitions", on: "^acq/(?P<p>\\w+)/(?P<n>\\d+)$", make: {task: "compute/${p}/${n}", queue: "todo", set: "todo-set"}}
		]}]}`)
	// A dead letter from an earlier day, whose event the rules handle.
	seeded := deadletter.NewEntry("acq/plantA/99", "events", "rule \"acquisitions\": seeded for the test", "old-replica", time.Now().Add(-time.Hour), 0)
	if err := rdb.LPush(t.Context(), "events/dead", seeded.JSON()).Err(); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreePort(t)
	rep := proctest.Start(t, []string{"RESC_UI_TOKEN=" + uiToken, "RESC_UI_INTERVAL=300ms"},
		"run", "--ui", "--http-addr", addr, "--replica-id", "ui-replica-1", cfg)
	rep.WaitLog(20*time.Second, "console: http://"+addr+"/ui/")
	base := "http://" + addr

	// The overview: the replica, then the figures changing, live.
	run(t, ctx, "overview", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(css(`tr[data-replica="ui-replica-1"] .badge.ok`)))
	for i := range 5 {
		rdb.LPush(t.Context(), "events", "acq/plantB/"+strconv.Itoa(i))
	}
	rdb.LPush(t.Context(), "events", "plant/nowhere")
	run(t, ctx, "live update of the task queue", chromedp.WaitVisible(css(`tr[data-task-queue="todo"]`)))
	waitText(t, ctx, `tr[data-task-queue="todo"] td:nth-child(2)`, "5")
	waitText(t, ctx, `.watcher [data-list="dead"]`, "2")
	screenshot(t, ctx, "overview")

	// Read-only without a session: no actions offered, a POST refused.
	run(t, ctx, "dead letters, logged out", chromedp.Navigate(base+"/ui/dead?queue=events"), chromedp.WaitVisible(css(`#dead`)))
	boxes := value(t, ctx, "checkboxes", chromedp.Evaluate[int](`document.querySelectorAll('#dead input[type=checkbox]').length`))
	if boxes != 0 {
		t.Errorf("logged out, the dead letters page offers %d checkboxes", boxes)
	}
	status := value(t, ctx, "POST without a session", chromedp.Evaluate[int](`fetch('/ui/dead/action', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
		body: 'queue=events&op=drop:matching&confirm=yes'}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if status != http.StatusForbidden {
		t.Errorf("POST without a session: %d, want 403", status)
	}
	if n := rdb.LLen(t.Context(), "events/dead").Val(); n != 2 {
		t.Fatalf("dead list: %d entries after a refused drop, want 2", n)
	}

	// A wrong token, then the right one.
	run(t, ctx, "wrong token", chromedp.Click(css(`#login-link`)), chromedp.WaitVisible(css(`#token`)),
		chromedp.SendKeys(css(`#token`), "not-the-token-at-all"), chromedp.Submit(css(`#token`)), chromedp.WaitVisible(css(`.error`)))
	screenshot(t, ctx, "login")
	run(t, ctx, "login", chromedp.Navigate(base+"/ui/login?next="+url.QueryEscape("/ui/dead?queue=events")), chromedp.WaitVisible(css(`#token`)), chromedp.SendKeys(css(`#token`), uiToken), chromedp.Submit(css(`#token`)),
		chromedp.WaitVisible(css(`#dead input[name=id]`)))
	screenshot(t, ctx, "dead-letters")

	// Search, view the seeded entry, requeue it: the replica processes it.
	run(t, ctx, "search", chromedp.SendKeys(css(`input[name=q]`), "seeded"), chromedp.Submit(css(`input[name=q]`)),
		chromedp.WaitVisible(css(`#dead-summary`)))
	waitText(t, ctx, `#dead-summary`, "entries 1–1 of 1 matching")
	run(t, ctx, "entry", chromedp.Click(css(`#dead tbody a`)), chromedp.WaitVisible(css(`#event`)))
	waitText(t, ctx, `#event`, "acq/plantA/99")
	screenshot(t, ctx, "dead-letter")
	run(t, ctx, "requeue", chromedp.Click(css(`#requeue`)), chromedp.WaitVisible(css(`.flash`)))
	waitText(t, ctx, `.flash`, "Requeued 1 entry.")
	testutil.Eventually(t, "the requeued event processed", func() bool {
		return rdb.ZScore(t.Context(), "todo-set", "compute/plantA/99").Err() == nil
	})

	// A bulk action is confirmed first.
	rdb.LPush(t.Context(), "events", "plant/elsewhere")
	testutil.Eventually(t, "a second dead letter", func() bool { return rdb.LLen(t.Context(), "events/dead").Val() == 2 })
	run(t, ctx, "select all", chromedp.Navigate(base+"/ui/dead?queue=events"), chromedp.WaitVisible(css(`#select-all`)),
		chromedp.Click(css(`#select-all`)), chromedp.Click(css(`#drop-selected`)), chromedp.WaitVisible(css(`#confirm`)))
	waitText(t, ctx, `h1`, "Drop 2 entries?")
	screenshot(t, ctx, "confirm")
	if n := rdb.LLen(t.Context(), "events/dead").Val(); n != 2 {
		t.Fatalf("dead list: %d entries before the confirmation, want 2", n)
	}
	run(t, ctx, "confirm", chromedp.Click(css(`#confirm`)), chromedp.WaitVisible(css(`.flash`)))
	waitText(t, ctx, `.flash`, "Dropped 2 entries.")
	if n := rdb.LLen(t.Context(), "events/dead").Val(); n != 0 {
		t.Errorf("dead list: %d entries after dropping all, want 0", n)
	}
	run(t, ctx, "overview again", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(css(`tr[data-task-queue="todo"]`)))
	waitText(t, ctx, `tr[data-task-queue="todo"] td:nth-child(2)`, "6")
}

// waitText waits until the text of sel contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	var got string
	ok, _ := testutil.Poll(15*time.Second, func() (bool, string) {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		text, err := chromedp.Run(tctx, chromedp.Text(css(sel)))
		if err != nil {
			return false, err.Error()
		}
		got = text
		return strings.Contains(got, want), got
	})
	if !ok {
		t.Fatalf("browser: %s shows %q, want %q", sel, got, want)
	}
}
