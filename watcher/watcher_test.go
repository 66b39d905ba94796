package watcher

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/fetch"
	"github.com/resc-go/resc/internal/counts"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/testutil"
)

// resc's introductory rule.
var acqRule = rule("TRT computation on data acquisition", `^acq/(?P<process_id>\w+)/(?P<product_id>\d+)$`,
	mk("trt/${process_id}/${product_id}", "trt/${process_id}/todo", "trt/${process_id}/todo-set"))

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []config.Rule{acqRule}, nil, nil)
	h.start()
	h.push("acq/plantA/1", "acq/plantA/2", "acq/plantB/3", "nothing/matches")
	h.waitHandled(4)
	if got, want := h.list("trt/plantA/todo"), []string{"trt/plantA/2", "trt/plantA/1"}; !equal(got, want) {
		t.Errorf("trt/plantA/todo = %q, want %q", got, want)
	}
	if got, want := h.list("trt/plantB/todo"), []string{"trt/plantB/3"}; !equal(got, want) {
		t.Errorf("trt/plantB/todo = %q, want %q", got, want)
	}
	score, err := h.rdb.ZScore(context.Background(), "trt/plantA/todo-set", "trt/plantA/1").Result()
	if err != nil || int64(score) != fixedNow.Unix() {
		t.Errorf("set score %v (%v), want %d", score, err, fixedNow.Unix())
	}
	if got := h.list(h.w.TakenList()); len(got) != 0 {
		t.Errorf("taken list not empty: %q", got)
	}
	if got := h.list("in"); len(got) != 0 {
		t.Errorf("input not empty: %q", got)
	}
}

// TestDedupAndRequeue: a task already in its set is not pushed again, until
// a worker removes it from the set (as it does when it takes the task).
func TestDedupAndRequeue(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []config.Rule{acqRule}, nil, nil)
	h.start()
	h.push("acq/p/1")
	h.waitHandled(1)
	h.push("acq/p/1")
	h.waitHandled(2)
	if got := h.list("trt/p/todo"); len(got) != 1 {
		t.Fatalf("after a duplicate event: %q, want one task", got)
	}
	if h.w.stats.TasksDeduped.Load() != 1 {
		t.Errorf("deduplicated = %d, want 1", h.w.stats.TasksDeduped.Load())
	}
	// The worker's protocol: take the task, remove it from the set.
	ctx := context.Background()
	if err := h.rdb.Do(ctx, "BRPOPLPUSH", "trt/p/todo", "trt/p/todo/taken", 0).Err(); err != nil { // resc workers use BRPOPLPUSH
		t.Fatal(err)
	}
	h.rdb.ZRem(ctx, "trt/p/todo-set", "trt/p/1")
	h.push("acq/p/1")
	h.waitHandled(3)
	if got := h.list("trt/p/todo"); !equal(got, []string{"trt/p/1"}) {
		t.Fatalf("after the worker took it: %q, want it queued again", got)
	}
}

func TestSeveralRulesAndMakers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []config.Rule{
		rule("a", `^x/(?P<n>\d+)$`, mk("a/${n}", "qa", ""), mk("b/${n}", "qb", "")),
		rule("b", `^x/`, mk("", "qc", "")),
		rule("never", `^y`, mk("z", "qz", "")),
	}, nil, nil)
	h.start()
	h.push("x/7")
	h.waitHandled(1)
	for q, want := range map[string][]string{"qa": {"a/7"}, "qb": {"b/7"}, "qc": {"x/7"}, "qz": nil} {
		if got := h.list(q); !equal(got, want) {
			t.Errorf("%s = %q, want %q", q, got, want)
		}
	}
}

// TestStartupReplay: events left in this replica's taken list by an earlier
// run are handled first, in the order they were taken.
func TestStartupReplay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []config.Rule{rule("all", `^(?P<e>.+)$`, mk("${e}", "out", ""))}, nil, nil)
	ctx := context.Background()
	// Taken earlier, oldest first: old1 then old2 (BLMOVE pushes to the head).
	h.rdb.LPush(ctx, h.w.TakenList(), "old1", "old2")
	h.rdb.LPush(ctx, "in", "new1", "new2")
	// Another replica's taken list is not ours to replay.
	h.rdb.LPush(ctx, "in/taken/r2", "theirs")
	h.start()
	h.waitHandled(4)
	// out is LPUSHed: the head is the last one made.
	if got, want := h.list("out"), []string{"new2", "new1", "old2", "old1"}; !equal(got, want) {
		t.Errorf("out = %q, want %q (replayed first, in order)", got, want)
	}
	if got := h.list("in/taken/r2"); !equal(got, []string{"theirs"}) {
		t.Errorf("other replica's list touched: %q", got)
	}
	if h.w.stats.HandedBack.Load() != 2 {
		t.Errorf("replayed %d, want 2", h.w.stats.HandedBack.Load())
	}
	if !strings.Contains(h.logs.String(), "replayed events left") {
		t.Errorf("replay not logged:\n%s", h.logs)
	}
}

// TestBadEvents: empty, invalid UTF-8, 1 MiB and unmatched events are all
// handled and leave the taken list; a bad destination dead-letters its event
// with the reason, keeping its exact bytes.
func TestBadEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []config.Rule{
		rule("all", `^(?P<e>.*)$`, mk("got:${e}", "out", "")),
		rule("to-hash", `^hash`, mk("", "h", "")),
		rule("to-nothing", `^empty-queue/(?P<q>.*)$`, mk("", "${q}", "")),
	}, nil, nil)
	h.rdb.HSet(context.Background(), "h", "f", "v")
	h.start()
	big := strings.Repeat("b", 1<<20)
	invalid := "bad\xff\xfeutf8"
	h.push("", invalid, big, "hash\xff", "empty-queue/")
	h.waitHandled(5)
	out := h.list("out")
	if len(out) != 3 || out[2] != "got:" || out[1] != "got:"+invalid || out[0] != "got:"+big {
		t.Errorf("out has %d tasks, want got: for the empty, invalid and big events", len(out))
	}
	dead := h.list("in/dead")
	if len(dead) != 2 {
		t.Fatalf("dead = %q, want 2 entries", dead)
	}
	reasons := map[string]deadletter.Entry{}
	for _, d := range dead {
		ep, err := deadletter.Decode(d)
		if err != nil {
			t.Fatal(err)
		}
		e := *ep
		raw, _ := base64.StdEncoding.DecodeString(e.EventBase64)
		if e.EventBase64 != "" {
			e.Event = string(raw)
		}
		reasons[e.Event] = e
	}
	if e := reasons["hash\xff"]; e.Reason != "queue h is a hash, not a list" {
		t.Errorf("hash event: %+v", e)
	}
	if e := reasons["empty-queue/"]; !strings.Contains(e.Reason, "empty queue name") {
		t.Errorf("empty queue event: %+v", e)
	}
	if got := h.list(h.w.TakenList()); len(got) != 0 {
		t.Errorf("taken list not empty: %d entries", len(got))
	}
	if strings.Contains(h.logs.String(), strings.Repeat("b", 1000)) {
		t.Error("a 1 MiB event was logged whole")
	}
}

// fetchServer answers GET /children/<id> with children, counting requests.
func fetchServer(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(s.Close)
	return s, &n
}

func TestFetchRule(t *testing.T) {
	t.Parallel()
	s, _ := fetchServer(t, 200, `[{"processId":634876914,"productId":"5ab7e7dc00000040"},{"processId":1.50,"productId":"b","x":[1]}]`)
	fr := rule("children", `^trt/(?P<product_id>\w+)$`, mk("trt/${child.processId}/${child.productId}", "trt/${child.processId}/todo", ""))
	fr.Fetch = []config.Fetcher{{URL: s.URL + "/children/${product_id}", Returns: "child"}}
	h := newHarness(t, []config.Rule{fr, rule("plain", `^trt/`, mk("", "plain", ""))},
		fetch.New(fetch.Options{Settings: config.FetchSettings{Timeout: 5e9, Retries: 0, MaxBody: 1 << 20}}), nil)
	h.start()
	h.push("trt/abc")
	h.waitHandled(1)
	if got := h.list("trt/634876914/todo"); !equal(got, []string{"trt/634876914/5ab7e7dc00000040"}) {
		t.Errorf("trt/634876914/todo = %q", got)
	}
	if got := h.list("trt/1.50/todo"); !equal(got, []string{"trt/1.50/b"}) {
		t.Errorf("trt/1.50/todo = %q", got)
	}
	if got := h.list("plain"); !equal(got, []string{"trt/abc"}) {
		t.Errorf("plain = %q", got)
	}
}

// TestFetchFailureDeadLetters: a permanent fetch failure sends the event to
// the dead-letter list with the reason, and none of its tasks is pushed.
func TestFetchFailureDeadLetters(t *testing.T) {
	t.Parallel()
	s, n := fetchServer(t, 404, `no`)
	fr := rule("children", `^trt/(?P<id>\w+)$`, mk("", "out", ""))
	fr.Fetch = []config.Fetcher{{URL: s.URL + "/children/${id}", Returns: "child"}}
	h := newHarness(t, []config.Rule{rule("plain", `.`, mk("", "plain", "")), fr},
		fetch.New(fetch.Options{Settings: config.FetchSettings{Timeout: 5e9, Retries: 2, MaxBody: 1 << 20}}),
		func(_ *config.Watcher, o *Options) { o.Permanent = fetch.IsPermanent })
	h.start()
	h.push("trt/abc")
	h.waitHandled(1)
	e := h.onlyDead()
	if e.Event != "trt/abc" || !strings.Contains(e.Reason, "404") || !strings.Contains(e.Reason, `rule "children"`) {
		t.Errorf("dead entry %+v", e)
	}
	if got := h.list("plain"); len(got) != 0 {
		t.Errorf("a task of a dead-lettered event was pushed: %q", got)
	}
	if n.Load() != 1 {
		t.Errorf("a 404 was requested %d times, want 1 (permanent)", n.Load())
	}
}

// TestOversizedEventSetAside: an event longer than max_event_bytes is
// dead-lettered before any rule runs, whether it is found by a take
// (queued before the watcher starts) or by the blocking take of an idle
// watcher: the entry holds its first bytes, its size and where its exact
// bytes are; the events around it are handled as usual.
func TestOversizedEventSetAside(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []config.Rule{rule("any", `^`, mk("t/${input_task}", "q", ""))}, nil,
		func(_ *config.Watcher, o *Options) { o.MaxEventBytes = 300 })
	ctx := context.Background()
	queued := "acq/" + strings.Repeat("q", 400)
	idle := "acq/" + strings.Repeat("i", 500) + "\xff"
	h.push("small1", queued, "small2")
	h.start()
	h.waitHandled(3)
	h.push(idle) // taken by the blocking take
	h.waitHandled(4)
	h.push("small3")
	h.waitHandled(5)
	if got, want := h.list("q"), []string{"t/small3", "t/small2", "t/small1"}; !equal(got, want) {
		t.Errorf("q = %q, want %q: no task of a set-aside event", got, want)
	}
	dead := h.list("in/dead")
	if len(dead) != 2 {
		t.Fatalf("dead = %q, want the two big events", dead)
	}
	stored := h.rdb.HGetAll(ctx, "resc:oversized:in").Val()
	for i, ev := range []string{idle, queued} { // newest first
		e, err := deadletter.Decode(dead[i])
		if err != nil {
			t.Fatal(err)
		}
		if !e.SetAside() || e.EventBytes != int64(len(ev)) || e.EventKey != "resc:oversized:in" || stored[e.EventField] != ev {
			t.Errorf("entry %+v: want size %d and the exact bytes in resc:oversized:in", e, len(ev))
		}
		if e.Event != strings.ToValidUTF8(ev[:200], "\uFFFD") || e.EventBase64 != "" {
			t.Errorf("entry event %q (base64 %q), want the first 200 bytes", e.Event, e.EventBase64)
		}
		if want := fmt.Sprintf("event of %d bytes, more than max_event_bytes (300)", len(ev)); !strings.Contains(e.Reason, want) {
			t.Errorf("reason %q, want it to say %q", e.Reason, want)
		}
	}
	if n := h.rdb.LLen(ctx, "in/taken/r1").Val(); n != 0 {
		t.Errorf("taken list holds %d entries, want none", n)
	}
	if s := &h.w.stats; s.DeadLettered.Load() != 2 || s.Committed.Load() != 3 {
		t.Errorf("dead-lettered %d, committed %d; want 2 and 3", s.DeadLettered.Load(), s.Committed.Load())
	}
}

// TestBlockingTakeSetsAside: an oversized event taken by the blocking take
// (BLMOVE, which cannot look before it takes) is set aside in place at the
// head of the taken list.
func TestBlockingTakeSetsAside(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, func(_ *config.Watcher, o *Options) { o.MaxEventBytes = 300 })
	ctx := context.Background()
	big := strings.Repeat("b", 301)
	pushed := make(chan error, 1)
	go func() {
		// Once the take blocks (INFO clients: blocked_clients:1).
		if ok, state := testutil.Poll(10*time.Second, func() (bool, string) {
			info := h.rdb.Info(ctx, "clients").Val()
			return strings.Contains(info, "blocked_clients:1\r"), info
		}); !ok {
			pushed <- fmt.Errorf("the take never blocked: %s", state)
			return
		}
		pushed <- h.rdb.LPush(ctx, "in", big).Err()
	}()
	got, _, err := h.w.take(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("took %q, want one set-aside entry", got)
	}
	size, field, head, ok := keyspace.ParseSetAside(got[0])
	if !ok || size != 301 || head != big[:200] {
		t.Fatalf("took %q, want the set-aside entry of the big event", got[0])
	}
	if v := h.rdb.HGet(ctx, "resc:oversized:in", field).Val(); v != big {
		t.Errorf("field %s holds %d bytes, want the event", field, len(v))
	}
	if l := h.list("in/taken/r1"); len(l) != 1 || l[0] != got[0] {
		t.Errorf("taken list %q, want the set-aside entry alone", l)
	}
}

// TestCounts: Counts is a snapshot of what the watcher counted, in the
// shape its replica publishes: totals always, matches per rule and tasks
// per queue with a MeterProvider.
func TestCounts(t *testing.T) {
	t.Parallel()
	other := rule("other", `^acq/`, mk("o/${input_task}", "other", ""))
	for _, metered := range []bool{false, true} {
		t.Run(fmt.Sprint("metered=", metered), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, []config.Rule{acqRule, other}, nil, func(_ *config.Watcher, o *Options) {
				if metered {
					o.MeterProvider = sdkmetric.NewMeterProvider()
				}
			})
			h.start()
			h.push("acq/p/1", "acq/p/1", "nothing")
			h.waitHandled(3)
			got := h.w.Counts()
			want := counts.Watcher{
				InputQueue: "in", Taken: 3, Handled: 3, Pushed: 3, Deduplicated: 1,
				Rules:  []counts.Rule{{Index: 0, Name: acqRule.Name}, {Index: 1, Name: "other"}},
				Queues: []counts.Queue{},
			}
			if metered {
				want.Rules[0].Matches, want.Rules[1].Matches = 2, 2
				want.Queues = []counts.Queue{{Queue: "other", Pushed: 2}, {Queue: "trt/p/todo", Pushed: 1, Deduplicated: 1}}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Counts() =\n%+v\nwant\n%+v", got, want)
			}
			// A snapshot: changing it changes nothing in the watcher.
			got.Rules[0].Matches, got.Taken = 99, 99
			if again := h.w.Counts(); !reflect.DeepEqual(again, want) {
				t.Errorf("Counts() after changing a snapshot =\n%+v\nwant\n%+v", again, want)
			}
		})
	}
}
