package console

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/inspect"
	"github.com/resc-go/resc/internal/counts"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/membership"
)

const testToken = "0123456789abcdef-test-token"

// planted is a secret of the configuration that no page may show.
const planted = "s3cr3t-PLANTED-pw"

type fixture struct {
	t   *testing.T
	rdb *redis.Client
	cfg *config.Config
	c   *Console
	srv *httptest.Server
	cl  *http.Client
	now time.Time
}

func newFixture(t *testing.T, o Options) *fixture {
	t.Helper()
	rdb := redistest.Start(t).Client()
	cfg, err := config.LoadBytes("c.hjson", []byte(`{
		redis: {url: "redis://user:`+planted+`@127.0.0.1:1/0"},
		watchers: [{input_queue: "in", rules: [
			{name: "fetcher", on: "^f/(?P<n>\\d+)", fetch: [{url: "http://127.0.0.1:1/x?token=`+planted+`", returns: "r"}], make: {queue: "q/${n}"}},
			{name: "plain", on: "^a", make: {queue: "q", set: "s"}}
		]}, {input_queue: "other", rules: [{on: "^b", make: {queue: "q2"}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, rdb: rdb, cfg: cfg, now: time.Now()}
	if o.Now == nil {
		o.Now = func() time.Time { return f.now }
	}
	if f.c, err = New(inspect.New(rdb, cfg, inspect.Options{}), cfg, o); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.c)
	t.Cleanup(f.srv.Close)
	jar, _ := cookiejar.New(nil)
	f.cl = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return f
}

// get returns the status and body of a GET of path.
func (f *fixture) get(path string) (int, string) {
	f.t.Helper()
	resp, err := f.cl.Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(b), planted) {
		f.t.Errorf("GET %s shows the planted secret", path)
	}
	return resp.StatusCode, string(b)
}

// post posts form from the console's own origin unless origin is given.
func (f *fixture) post(path string, form url.Values, origin ...string) (*http.Response, string) {
	f.t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.srv.URL)
	if len(origin) > 0 {
		req.Header.Set("Origin", origin[0])
	}
	resp, err := f.cl.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (f *fixture) login() {
	f.t.Helper()
	resp, body := f.post("/ui/login", url.Values{"token": {testToken}, "next": {"/ui/dead?queue=in"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/dead?queue=in" {
		f.t.Fatalf("login: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]*)"`)

// csrf is the CSRF token of the current session, read from a page.
func (f *fixture) csrf() string {
	f.t.Helper()
	_, body := f.get("/ui/dead?queue=in")
	m := csrfRE.FindStringSubmatch(body)
	if m == nil || m[1] == "" {
		f.t.Fatalf("no CSRF token on the page")
	}
	return m[1]
}

func (f *fixture) deadLetters(entries ...string) {
	f.t.Helper()
	// LPUSH one by one: the first given is the oldest.
	for _, e := range entries {
		if err := f.rdb.LPush(context.Background(), "in/dead", e).Err(); err != nil {
			f.t.Fatal(err)
		}
	}
}

func entry(event, reason string) string {
	return deadletter.NewEntry(event, "in", reason, "r1", time.Unix(1_800_000_000, 0), 0).JSON()
}

func (f *fixture) list(key string) []string {
	f.t.Helper()
	v, err := f.rdb.LRange(context.Background(), key, 0, -1).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// TestOverview: a registered replica, the leader, the lengths and the
// counts and rates of the published counters show; Redis' secrets do not.
func TestOverview(t *testing.T) {
	f := newFixture(t, Options{Interval: time.Second})
	ctx := t.Context()
	m, err := membership.Register(ctx, f.rdb, membership.Info{ID: "rep-1", Host: "h1", Version: "v9.9", Started: f.now.Add(-time.Hour),
		TakenLists: []string{"in/taken/rep-1"}}, membership.Options{Settings: membership.TestSettings()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Deregister(context.Background()) })
	redistest.Load(t, f.rdb, redistest.Data{
		"in": redistest.List{"e1", "e2", "e3"}, "in/taken/rep-1": redistest.List{"e4", "e5"},
		"in/dead": redistest.List{"d"}, "resc:leader": "rep-1",
	})
	publish := func(at time.Time, handled, matches, pushed int64) {
		t.Helper()
		err := membership.PublishCounters(ctx, f.rdb, "", "rep-1", membership.Counters{Time: at, Watchers: []counts.Watcher{{
			InputQueue: "in", Taken: handled, Handled: handled,
			Rules:  []counts.Rule{{Index: 0, Name: "fetcher"}, {Index: 1, Name: "plain", Matches: matches}},
			Queues: []counts.Queue{{Queue: "q", Pushed: pushed, Deduplicated: 7}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	publish(f.now, 100, 40, 30)
	code, body := f.get("/ui/")
	if code != 200 {
		t.Fatalf("GET /ui/: %d %s", code, body)
	}
	for _, want := range []string{
		`<tr data-replica="rep-1">`, `leader <strong id="leader">rep-1</strong>`, `<span class="badge ok">alive</span>`,
		`v9.9`, `<td class="num in-flight">2</td>`, `data-list="input">3<`, `data-list="taken">2<`, `data-list="dead" href="/ui/dead?queue=in">1<`,
		`<tr data-task-queue="q"><td><code>q</code></td><td class="num">30</td><td class="num">7</td>`,
		`<td>plain</td><td class="num">40</td>`, `uptime`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	// A reading 10 s later with 500 more events handled: 50/s.
	f.now = f.now.Add(10 * time.Second)
	publish(f.now, 600, 140, 530)
	_, body = f.get("/ui/?fragment=1")
	if strings.Contains(body, "<html") {
		t.Error("the fragment is a whole page")
	}
	for _, want := range []string{`data-rate="handled">50/s<`, `<td class="num">530</td><td class="num">7</td><td class="num">50/s</td>`, `<td class="num">140</td><td class="num">10/s</td>`} {
		if !strings.Contains(body, want) {
			t.Errorf("fragment lacks %q", want)
		}
	}
}

// TestReadOnly: without a token nothing can be changed, and nobody can
// log in.
func TestReadOnly(t *testing.T) {
	f := newFixture(t, Options{})
	f.deadLetters(entry("a/1", "boom"))
	_, body := f.get("/ui/dead?queue=in")
	if !strings.Contains(body, "read-only") || strings.Contains(body, `name="op"`) {
		t.Error("a read-only console offers actions")
	}
	resp, _ := f.post("/ui/dead/action", url.Values{"queue": {"in"}, "op": {"drop:matching"}, "confirm": {"yes"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("action on a read-only console: %d, want 403", resp.StatusCode)
	}
	resp, _ = f.post("/ui/login", url.Values{"token": {""}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("login on a read-only console: %d, want 403", resp.StatusCode)
	}
	if got := f.list("in/dead"); len(got) != 1 {
		t.Errorf("dead list %v changed", got)
	}
}

// TestAuth: a wrong token, a missing or wrong CSRF token, another origin,
// an expired session are refused and change nothing; the right ones act.
func TestAuth(t *testing.T) {
	f := newFixture(t, Options{Token: testToken})
	f.deadLetters(entry("a/1", "boom"))
	act := url.Values{"queue": {"in"}, "op": {"drop:matching"}, "confirm": {"yes"}}

	if resp, _ := f.post("/ui/dead/action", act); resp.StatusCode != http.StatusForbidden {
		t.Errorf("action without a session: %d", resp.StatusCode)
	}
	if resp, body := f.post("/ui/login", url.Values{"token": {testToken + "x"}}); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong token") {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	if resp, _ := f.post("/ui/login", url.Values{"token": {testToken}}, "http://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login from another origin: %d", resp.StatusCode)
	}
	f.login()
	csrf := f.csrf()
	if resp, _ := f.post("/ui/dead/action", act); resp.StatusCode != http.StatusForbidden {
		t.Errorf("action without CSRF token: %d", resp.StatusCode)
	}
	bad := url.Values{"csrf": {strings.Repeat("0", len(csrf))}}
	for k, v := range act {
		bad[k] = v
	}
	if resp, _ := f.post("/ui/dead/action", bad); resp.StatusCode != http.StatusForbidden {
		t.Errorf("action with a wrong CSRF token: %d", resp.StatusCode)
	}
	good := url.Values{"csrf": {csrf}}
	for k, v := range act {
		good[k] = v
	}
	if resp, _ := f.post("/ui/dead/action", good, "http://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("action from another origin: %d", resp.StatusCode)
	}
	if got := f.list("in/dead"); len(got) != 1 {
		t.Fatalf("a refused action changed the dead list: %v", got)
	}
	saved := f.now
	f.now = f.now.Add(sessionTTL + time.Second)
	if resp, _ := f.post("/ui/dead/action", good); resp.StatusCode != http.StatusForbidden {
		t.Errorf("action in an expired session: %d", resp.StatusCode)
	}
	f.now = saved
	resp, _ := f.post("/ui/dead/action", good)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("action: %d", resp.StatusCode)
	}
	if got := f.list("in/dead"); len(got) != 0 {
		t.Errorf("dead list after drop: %v", got)
	}
	_, body := f.get("/ui/dead?queue=in")
	if !strings.Contains(body, "Dropped 1 entry.") {
		t.Error("no result message after the action")
	}
	if _, body = f.get("/ui/dead?queue=in"); strings.Contains(body, "Dropped 1 entry.") {
		t.Error("the result message shows twice")
	}
}

// TestSearchAndPages: the filter by text, reason and rule, and pages of
// pageSize entries, newest first.
func TestSearchAndPages(t *testing.T) {
	f := newFixture(t, Options{})
	var entries []string
	for i := range 120 {
		reason := "boom"
		if i%10 == 0 {
			reason = `rule "fetcher": GET http://127.0.0.1:1/x: 404 Not Found`
		}
		entries = append(entries, entry("ev/"+strings.Repeat("x", i%3)+"/"+itoa(i), reason))
	}
	f.deadLetters(entries...)
	_, body := f.get("/ui/dead?queue=in")
	if !strings.Contains(body, "entries 1–50 of 120") || !strings.Contains(body, `<tr data-position="120">`) || strings.Contains(body, `<tr data-position="70">`) {
		t.Errorf("first page: %s", summary(body))
	}
	_, body = f.get("/ui/dead?queue=in&offset=100")
	if !strings.Contains(body, "entries 101–120 of 120") || !strings.Contains(body, `<tr data-position="1">`) || !strings.Contains(body, `rel="prev"`) || strings.Contains(body, `rel="next"`) {
		t.Errorf("last page: %s", summary(body))
	}
	_, body = f.get("/ui/dead?queue=in&rule=fetcher")
	if !strings.Contains(body, "entries 1–12 of 12 matching") {
		t.Errorf("by rule: %s", summary(body))
	}
	_, body = f.get("/ui/dead?queue=in&reason=404&q=" + url.QueryEscape("/xx/"))
	// i%10==0 and i%3==2: 20, 50, 80, 110.
	if !strings.Contains(body, "entries 1–4 of 4 matching") || !strings.Contains(body, "ev/xx/110") {
		t.Errorf("by reason and text: %s", summary(body))
	}
	if code, _ := f.get("/ui/dead?queue=nope"); code != http.StatusNotFound {
		t.Errorf("unknown queue: %d", code)
	}
}

// TestActions: one entry requeued from its page, a selection and all
// matching dropped after a confirmation, an entry that moved found by its
// id, a gone one reported.
func TestActions(t *testing.T) {
	f := newFixture(t, Options{Token: testToken, JaegerURL: "http://127.0.0.1:16686/"})
	e1 := deadletter.NewEntry("a/1", "in", "boom", "r1", time.Unix(1_800_000_000, 0), 0)
	e1.TraceID = "0af7651916cd43dd8448eb211c80319c"
	secretReason := `rule "fetcher": fetch GET http://user:` + planted + `@127.0.0.1:1/x?n=1&access_token=` + planted + `: status 404`
	f.deadLetters(e1.JSON(), entry("a/2", "boom"), entry("b/3", "bang"), entry("b/4", "bang"), entry("b/5", "other"), entry("s/1", secretReason))
	f.login()
	csrf := f.csrf()
	// The fixture's get fails the test when a page shows the planted
	// secret: the list, the search and the entry mask it.
	_, body := f.get("/ui/dead?queue=in&rule=fetcher")
	if !strings.Contains(body, "access_token=xxxxx") || !strings.Contains(body, "user:xxxxx@") {
		t.Errorf("the reason's URL is not shown masked: %s", summary(body))
	}
	f.get("/ui/dead/entry?queue=in&pos=6&id=" + entryID(entry("s/1", secretReason)))

	_, body = f.get("/ui/dead/entry?queue=in&pos=1&id=" + entryID(e1.JSON()))
	if !strings.Contains(body, `href="http://127.0.0.1:16686/trace/0af7651916cd43dd8448eb211c80319c"`) || !strings.Contains(body, `<pre id="event">a/1</pre>`) {
		t.Errorf("entry page: trace link or event missing")
	}
	resp, _ := f.post("/ui/dead/action", url.Values{"queue": {"in"}, "do": {"requeue"}, "scope": {"selected"}, "id": {entryID(e1.JSON())}, "csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("requeue one: %d", resp.StatusCode)
	}
	if got := f.list("in"); len(got) != 1 || got[0] != "a/1" {
		t.Errorf("input queue after requeue: %v", got)
	}
	// a/2 is now #1: its old link (#2) still finds it, by id.
	_, body = f.get("/ui/dead/entry?queue=in&pos=2&id=" + entryID(entry("a/2", "boom")))
	if !strings.Contains(body, `<pre id="event">a/2</pre>`) || !strings.Contains(body, "now at #1") {
		t.Errorf("moved entry not found by its id")
	}
	if code, _ := f.get("/ui/dead/entry?queue=in&pos=1&id=" + entryID(e1.JSON())); code != http.StatusNotFound {
		t.Errorf("gone entry: %d", code)
	}

	// Two selected: a confirmation first, nothing done yet.
	sel := url.Values{"queue": {"in"}, "op": {"drop:selected"}, "id": {entryID(entry("b/3", "bang")), entryID(entry("b/4", "bang"))}, "csrf": {csrf}}
	resp, body = f.post("/ui/dead/action", sel)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Drop 2 entries?") || len(f.list("in/dead")) != 5 {
		t.Fatalf("bulk drop without confirmation: %d, list %v", resp.StatusCode, f.list("in/dead"))
	}
	sel.Set("confirm", "yes")
	if resp, _ = f.post("/ui/dead/action", sel); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed drop: %d", resp.StatusCode)
	}
	if got := f.list("in/dead"); len(got) != 3 {
		t.Errorf("after dropping 2 of 5: %v", got)
	}
	// All matching "other": requeued after confirmation.
	all := url.Values{"queue": {"in"}, "op": {"requeue:matching"}, "reason": {"other"}, "csrf": {csrf}}
	if _, body = f.post("/ui/dead/action", all); !strings.Contains(body, "Requeue 1 entry?") {
		t.Errorf("confirmation of all matching: %s", summary(body))
	}
	all.Set("confirm", "yes")
	f.post("/ui/dead/action", all)
	if got := f.list("in"); len(got) != 2 || got[0] != "b/5" {
		t.Errorf("input queue after requeueing all matching: %v", got)
	}
	if got := f.list("in/dead"); len(got) != 2 {
		t.Errorf("dead list after requeueing all matching: %v", got)
	}
}

// TestSafeNext: the login's return address stays in the console.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{"/ui/dead?queue=in": "/ui/dead?queue=in", "https://evil.example/ui/": "/ui/",
		"//evil.example": "/ui/", "/ui/\\evil": "/ui/", "": "/ui/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func summary(body string) string {
	if m := regexp.MustCompile(`(?s)<main>(.{0,600})`).FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return body
}

// TestManyTaskQueues: past maxQueuesShown task queues, the busiest are
// listed and the others summed in one row.
func TestManyTaskQueues(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := t.Context()
	m, err := membership.Register(ctx, f.rdb, membership.Info{ID: "rep-1", Started: f.now}, membership.Options{Settings: membership.TestSettings()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Deregister(context.Background()) })
	w := counts.Watcher{InputQueue: "in"}
	for i := range maxQueuesShown + 5 {
		w.Queues = append(w.Queues, counts.Queue{Queue: "q/" + strconv.Itoa(i), Pushed: int64(100 + i)})
	}
	if err := membership.PublishCounters(ctx, f.rdb, "", "rep-1", membership.Counters{Time: f.now, Watchers: []counts.Watcher{w}}); err != nil {
		t.Fatal(err)
	}
	_, body := f.get("/ui/")
	// The 5 least busy are q/0..q/4: 100+101+102+103+104 = 510.
	if !strings.Contains(body, `<code>5 other queues</code></td><td class="num">510</td>`) || strings.Contains(body, `data-task-queue="q/4"`) ||
		!strings.Contains(body, `data-task-queue="q/29"`) {
		t.Errorf("task queues: %s", body[strings.Index(body, "Task queues"):][:800])
	}
}
