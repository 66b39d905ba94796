package watcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/fetch"
	"github.com/resc-go/resc/internal/testutil"
)

// heldServer answers fetches only when the test releases them; entered
// tells the test a request arrived.
func heldServer(t *testing.T) (url string, entered <-chan struct{}, release chan<- struct{}) {
	in := make(chan struct{}, 100)
	rel := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in <- struct{}{}
		select {
		case <-rel:
			w.Write([]byte(`{"id":"1"}`))
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
	})
	return s.URL, in, rel
}

func heldRule(url string) config.Rule {
	r := rule("held", `^f/(?P<x>\w+)$`, mk("done/${x}/${r.id}", "out", ""))
	r.Fetch = []config.Fetcher{{URL: url + "/${x}", Returns: "r"}}
	return r
}

func fetcher() *fetch.Client {
	return fetch.New(fetch.Options{Settings: config.FetchSettings{Timeout: time.Minute, Retries: 0, MaxBody: 1 << 20}})
}

// TestFetchDoesNotBlockOthers: while one event waits on a slow fetch, events
// that need no fetch go through.
func TestFetchDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	url, entered, release := heldServer(t)
	h := newHarness(t, []config.Rule{heldRule(url), rule("plain", `^p/`, mk("", "plain", ""))}, fetcher(), nil)
	h.start()
	h.push("f/a")
	<-entered
	h.push("p/1", "p/2", "p/3")
	testutil.Eventually(t, "plain events committed while the fetch is held", func() bool { return len(h.list("plain")) == 3 })
	close(release)
	h.waitHandled(4)
	if got := h.list("out"); !equal(got, []string{"done/a/1"}) {
		t.Errorf("out = %q", got)
	}
}

// TestShutdownDrains: on cancel, an event in flight finishes (within the
// drain timeout) and no new event is taken.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	url, entered, release := heldServer(t)
	h := newHarness(t, []config.Rule{heldRule(url)}, fetcher(), nil)
	h.start()
	h.push("f/a")
	<-entered
	h.cancel()
	testutil.Eventually(t, "taking stopped", func() bool { return strings.Contains(h.logs.String(), "stopped taking") })
	h.push("f/late")
	close(release)
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	h.cancel = nil
	if got := h.list("out"); !equal(got, []string{"done/a/1"}) {
		t.Errorf("out = %q, want the in-flight event finished", got)
	}
	if got := h.list("in"); !equal(got, []string{"f/late"}) {
		t.Errorf("in = %q, want the late event left untouched", got)
	}
	if got := h.list(h.w.TakenList()); len(got) != 0 {
		t.Errorf("taken = %q, want empty", got)
	}
}

// TestShutdownHandsBack: what cannot finish within the drain timeout goes
// back to the input queue, at the end taken next.
func TestShutdownHandsBack(t *testing.T) {
	t.Parallel()
	url, entered, _ := heldServer(t)
	h := newHarness(t, []config.Rule{heldRule(url)}, fetcher(), func(_ *config.Watcher, o *Options) {
		o.DrainTimeout = 50 * time.Millisecond
	})
	h.start()
	h.push("f/a")
	<-entered
	h.cancel()
	testutil.Eventually(t, "taking stopped", func() bool { return strings.Contains(h.logs.String(), "stopped taking") })
	h.push("later")
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
	h.cancel = nil
	if got := h.list("in"); !equal(got, []string{"later", "f/a"}) {
		t.Errorf("in = %q, want f/a handed back at the end taken next", got)
	}
	if got := h.list(h.w.TakenList()); len(got) != 0 {
		t.Errorf("taken = %q, want empty", got)
	}
	if got := h.list("out"); len(got) != 0 {
		t.Errorf("out = %q, want nothing pushed", got)
	}
	if n := h.w.stats.HandedBack.Load(); n != 1 {
		t.Errorf("handed back %d, want 1", n)
	}
}

// TestZombieCommitsNothing: an event replayed elsewhere while this replica
// still works on it (a paused replica presumed dead) is not committed: the
// fence of commit.lua refuses it.
func TestZombieCommitsNothing(t *testing.T) {
	t.Parallel()
	url, entered, release := heldServer(t)
	h := newHarness(t, []config.Rule{heldRule(url)}, fetcher(), nil)
	h.start()
	h.push("f/a")
	<-entered
	ctx := context.Background()
	// The leader replays it: it leaves this replica's taken list.
	if err := h.rdb.LMove(ctx, h.w.TakenList(), "replayed", "RIGHT", "LEFT").Err(); err != nil {
		t.Fatal(err)
	}
	close(release)
	testutil.Eventually(t, "commit refused", func() bool { return h.w.stats.NotOwned.Load() == 1 })
	if got := h.list("out"); len(got) != 0 {
		t.Errorf("out = %q: the zombie pushed its tasks", got)
	}
	if !strings.Contains(h.logs.String(), "no longer in this replica's taken list") {
		t.Errorf("not logged:\n%s", h.logs)
	}
}

// TestRedisRestart: the replica waits out a Redis restart with backoff,
// logs the outage once (not once per loop turn), and resumes.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []config.Rule{acqRule}, nil, nil)
	h.start()
	h.push("acq/p/1")
	h.waitHandled(1)
	h.srv.Stop()
	testutil.Eventually(t, "outage logged", func() bool { return strings.Contains(h.logs.String(), "redis unavailable") })
	h.srv.Restart() // an empty server: its script cache is empty too
	h.push("acq/p/2", "acq/p/3")
	h.waitHandled(3)
	if got := h.list("trt/p/todo"); !equal(got, []string{"trt/p/3", "trt/p/2"}) {
		t.Errorf("after restart: %q", got)
	}
	logs := h.logs.String()
	if n := strings.Count(logs, "redis unavailable"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs, "redis available again") {
		t.Errorf("recovery not logged:\n%s", logs)
	}
}

// TestStrandedEventsReplayed: a take that fails may have moved events into
// the taken list without the replica knowing them (a lost reply); after a
// failed take the replica replays its taken list once nothing is in flight.
func TestStrandedEventsReplayed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []config.Rule{acqRule}, nil, nil)
	ctx := context.Background()
	// Stranded events, and an input queue that makes every take fail.
	h.rdb.LPush(ctx, h.w.TakenList(), "acq/p/1", "acq/p/2")
	h.start()
	testutil.Eventually(t, "start replay", func() bool { return h.w.stats.HandedBack.Load() == 2 })
	h.waitHandled(2)
	// Now strand two more: the input becomes a string (takes fail), and
	// events appear in the taken list as a lost reply would leave them.
	h.rdb.Set(ctx, "in", "not a list", 0)
	testutil.Eventually(t, "take failure logged", func() bool { return strings.Contains(h.logs.String(), "redis unavailable") })
	h.rdb.LPush(ctx, h.w.TakenList(), "acq/p/3", "acq/p/4")
	h.rdb.Del(ctx, "in")
	h.waitHandled(4)
	if got := h.list("trt/p/todo"); !equal(got, []string{"trt/p/4", "trt/p/3", "trt/p/2", "trt/p/1"}) {
		t.Errorf("trt/p/todo = %q", got)
	}
	if got := h.list(h.w.TakenList()); len(got) != 0 {
		t.Errorf("taken = %q, want empty", got)
	}
}

// TestScriptErrorDoesNotStall: an event whose commit fails with an error of
// the script itself (here its taken list is not a list) is tried a few
// times, then left alone with an error log: the batch completes.
func TestScriptErrorDoesNotStall(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, nil)
	ctx := context.Background()
	h.rdb.HSet(ctx, h.w.TakenList(), "f", "v")
	done := make(chan []*item, 1)
	go func() {
		done <- h.w.commitBatch(ctx, []*item{{event: "ev", tasks: nil}})
	}()
	select {
	case left := <-done:
		if len(left) != 0 {
			t.Errorf("%d left over", len(left))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("commitBatch stalled on a script error")
	}
	logs := h.logs.String()
	for _, want := range []string{"dead-lettering it", "cannot commit nor dead-letter"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in logs:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "redis unavailable") {
		t.Errorf("a script error was taken for an outage:\n%s", logs)
	}
}

func TestIsOutage(t *testing.T) {
	t.Parallel()
	srv := newHarness(t, nil, nil, nil)
	ctx := context.Background()
	srv.rdb.Set(ctx, "s", "x", 0)
	scriptErr := srv.rdb.Eval(ctx, "return redis.call('LPUSH', KEYS[1], 'x')", []string{"s"}).Err()
	if scriptErr == nil || isOutage(scriptErr) {
		t.Errorf("a WRONGTYPE inside a script: isOutage = true (%v)", scriptErr)
	}
	srv.srv.Stop()
	netErr := srv.rdb.Ping(ctx).Err()
	if netErr == nil || !isOutage(netErr) {
		t.Errorf("a stopped server: isOutage = false (%v)", netErr)
	}
}

// TestHandBackKeepsOrder: events handed back at the drain timeout return in
// the order they were taken, the oldest taken next, whatever order their
// work was abandoned in.
func TestHandBackKeepsOrder(t *testing.T) {
	t.Parallel()
	url, entered, _ := heldServer(t)
	h := newHarness(t, []config.Rule{heldRule(url)}, fetcher(), func(_ *config.Watcher, o *Options) {
		o.DrainTimeout = 50 * time.Millisecond
	})
	h.start()
	for _, ev := range []string{"f/1", "f/2", "f/3", "f/4"} {
		h.push(ev)
		<-entered
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if got, want := h.list("in"), []string{"f/4", "f/3", "f/2", "f/1"}; !equal(got, want) {
		t.Errorf("in = %q, want %q (f/1, the oldest, at the end taken next)", got, want)
	}
}

// TestFenceStopsAtOnce: a lost lease stops the watcher without draining:
// the fetch in flight is cancelled, nothing is pushed or handed back, the
// event stays in the taken list for the leader to replay.
func TestFenceStopsAtOnce(t *testing.T) {
	t.Parallel()
	url, entered, _ := heldServer(t)
	lease, loseLease := context.WithCancel(context.Background())
	h := newHarness(t, []config.Rule{heldRule(url)}, fetcher(), func(_ *config.Watcher, o *Options) {
		o.Fence = lease
		o.DrainTimeout = time.Hour // a drain would hang the test
	})
	h.start()
	h.push("f/a")
	<-entered
	loseLease()
	select {
	case err := <-h.done:
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("Run = %v, want ErrFenced", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop when the lease was lost")
	}
	h.cancel = nil
	if got := h.list(h.w.TakenList()); !equal(got, []string{"f/a"}) {
		t.Errorf("taken = %q, want the event left for the leader", got)
	}
	if got := h.list("in"); len(got) != 0 {
		t.Errorf("in = %q, want nothing handed back", got)
	}
	if got := h.list("out"); len(got) != 0 {
		t.Errorf("out = %q, want nothing pushed", got)
	}
}

// TestIdleCommitsBesideFetches: events reaching an idle replica are
// committed by the taking goroutine (commitInline) while fetched events are
// committed by the committer at any moment; the two never commit at the
// same time (the race detector watches the shared commit buffers), events
// without fetch keep their order, whichever goroutine commits them, and
// every task is pushed once.
func TestIdleCommitsBesideFetches(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A service's latency, spread so that fetched events reach the
		// committer at any moment (not synchronisation).
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		w.Write([]byte(`[{"v":"x"}]`))
	}))
	t.Cleanup(srv.Close)
	fr := rule("fetched", `^f/(?P<n>\d+)$`, mk("f-${n}-${r.v}", "fetched", ""))
	fr.Fetch = []config.Fetcher{{URL: srv.URL + "/v/${n}", Returns: "r"}}
	h := newHarness(t, []config.Rule{fr, rule("plain", `^a/(?P<n>\d+)$`, mk("a-${n}", "plain", ""))},
		fetch.New(fetch.Options{Settings: config.FetchSettings{Timeout: 5e9, MaxBody: 1 << 20}}), nil)
	h.w.idleAfter = 0 // every event a take waited for is an idle one
	h.start()
	ctx := context.Background()
	blocked := func() bool { // the replica waits in BLMOVE
		for _, c := range strings.Split(h.rdb.ClientList(ctx).Val(), "\n") {
			if strings.Contains(c, " flags=b ") && strings.Contains(c, " cmd=blmove ") {
				return true
			}
		}
		return false
	}
	const rounds, fetchedPer, plainPer = 100, 5, 3
	var want []string
	plain, fetched := 0, 0
	for range rounds {
		// A batch for the committer: fetched events and plain ones...
		var batch []string
		for range fetchedPer {
			batch = append(batch, "f/"+strconv.Itoa(fetched))
			fetched++
		}
		for range plainPer {
			batch = append(batch, "a/"+strconv.Itoa(plain))
			want = append([]string{"a-" + strconv.Itoa(plain)}, want...)
			plain++
		}
		h.push(batch...)
		// ...then, once the replica is idle again, one event alone: the
		// taking goroutine commits it unless the committer still has work.
		testutil.Eventually(t, "the replica waiting in BLMOVE", blocked)
		h.push("a/" + strconv.Itoa(plain))
		want = append([]string{"a-" + strconv.Itoa(plain)}, want...)
		plain++
	}
	h.waitHandled(int64(plain + fetched))
	assertEqual(t, "plain", h.list("plain"), want)
	seen := map[string]bool{}
	for _, task := range h.list("fetched") {
		if seen[task] {
			t.Errorf("task %s pushed twice", task)
		}
		seen[task] = true
	}
	if len(seen) != fetched {
		t.Errorf("%d fetched tasks, want %d", len(seen), fetched)
	}
	assertEqual(t, "taken", h.list(h.w.TakenList()), nil)
	if n := h.w.inlineCommits.Load(); n == 0 {
		t.Error("no event was committed by the taking goroutine")
	} else {
		t.Logf("%d of %d events alone committed by the taking goroutine", n, rounds)
	}
}

// TestHandBackBigEventsInParts: the start replay and the shutdown
// hand-back move a taken list of big events in several short calls
// (about handBackBudget bytes each) and keep the order: the oldest event
// ends at the consuming end of the input queue.
func TestHandBackBigEventsInParts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, nil)
	ctx := context.Background()
	var events []string // oldest first
	for i := range 12 {
		events = append(events, fmt.Sprintf("%02d%s", i, strings.Repeat("x", 1<<20)))
	}
	// consuming returns the input queue from its consuming (right) end.
	consuming := func() []string {
		l := h.list("in")
		slices.Reverse(l)
		return l
	}
	for _, e := range events {
		h.rdb.LPush(ctx, "in/taken/r1", e) // as taken: newest at the head
	}
	h.rdb.ConfigResetStat(ctx)
	if err := h.w.replayTaken(ctx); err != nil {
		t.Fatal(err)
	}
	if n := evalshaCalls(t, h); n < 3 {
		t.Errorf("12 MiB replayed in %d calls, want one about every %d bytes", n, handBackBudget)
	}
	if got := consuming(); !slices.Equal(got, events) {
		t.Fatalf("start replay: input queue from its consuming end holds %d events out of order", len(got))
	}

	h.rdb.Del(ctx, "in")
	items := make([]*item, len(events))
	for i, e := range events {
		h.rdb.LPush(ctx, "in/taken/r1", e)
		items[len(events)-1-i] = &item{event: e, seq: uint64(i)} // any order: sorted by seq
	}
	h.rdb.ConfigResetStat(ctx)
	h.w.handBack(ctx, items)
	if n := evalshaCalls(t, h); n < 3 {
		t.Errorf("12 MiB handed back in %d calls, want one about every %d bytes", n, handBackBudget)
	}
	if got := consuming(); !slices.Equal(got, events) {
		t.Fatalf("hand-back: input queue from its consuming end holds %d events out of order", len(got))
	}
	if n := h.rdb.LLen(ctx, "in/taken/r1").Val(); n != 0 {
		t.Errorf("%d entries left in the taken list", n)
	}
}
