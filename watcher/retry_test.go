package watcher

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/fetch"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/internal/testutil"
	"github.com/resc-go/resc/recovery"
	"github.com/resc-go/resc/rules"
)

// promoteAll does the leader's part in these tests: it moves every member
// of the delay schedule of "in" back to the input queue, whatever its due
// time, and returns the due times it saw (Unix ms).
func (h *harness) promoteAll() []int64 {
	h.t.Helper()
	ctx := context.Background()
	sched := keyspace.DelaySchedule("resc:", "in")
	zs, err := h.rdb.ZRangeWithScores(ctx, sched, 0, -1).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	var due []int64
	for _, z := range zs {
		m := z.Member.(string)
		ev := m[strings.IndexByte(m, ':')+1:]
		h.rdb.ZRem(ctx, sched, m)
		h.rdb.RPush(ctx, "in", ev)
		due = append(due, int64(z.Score))
	}
	return due
}

// failingServer answers 503 to the first fails requests, then 200 with body.
func failingServer(t *testing.T, fails int64, body string) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= fails {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s, &n
}

func retryHarness(t *testing.T, url string, attempts int) *harness {
	fr := rule("children", `^trt/(?P<id>\w+)$`, mk("made/${id}/${c.name}", "out", ""))
	fr.Fetch = []config.Fetcher{{URL: url + "/children/${id}", Returns: "c"}}
	return newHarness(t, []config.Rule{rule("plain", `.`, mk("", "plain", "")), fr},
		fetch.New(fetch.Options{Settings: config.FetchSettings{Timeout: 5e9, Retries: 0, MaxBody: 1 << 20}}),
		func(_ *config.Watcher, o *Options) {
			o.Permanent = fetch.IsPermanent
			o.Retry = RetrySettings{Attempts: attempts, Delay: time.Second, MaxDelay: 3 * time.Second}
		})
}

// TestFetchFailureScheduledAgain: a transient fetch failure moves the event
// from the taken list to the delay schedule, due after a delay doubling per
// attempt (capped), counting its attempts apart from crash replays; no task
// of it is pushed until a later attempt succeeds, and then exactly once;
// the attempts are forgotten.
func TestFetchFailureScheduledAgain(t *testing.T) {
	t.Parallel()
	s, n := failingServer(t, 3, `{"name":"x"}`)
	h := retryHarness(t, s.URL, 5)
	h.start()
	ctx := context.Background()
	now := fixedNow.UnixMilli()
	field := sha1hex("trt/abc")
	h.push("trt/abc")
	for attempt, wantDelay := range []int64{1000, 2000, 3000} {
		testutil.Eventually(t, "the event scheduled again", func() bool { return h.w.stats.Retried.Load() == int64(attempt+1) })
		if got := h.list(h.w.TakenList()); len(got) != 0 {
			t.Fatalf("attempt %d: taken list %q, want empty", attempt+1, got)
		}
		if v := h.rdb.HGet(ctx, keyspace.FetchAttempts("resc:", "in"), field).Val(); v != strconv.Itoa(attempt+1)+" "+strconv.FormatInt(now, 10) {
			t.Errorf("attempt %d: attempts = %q", attempt+1, v)
		}
		if got := h.list("plain"); len(got) != 0 {
			t.Fatalf("a task of a failed event was pushed: %q", got)
		}
		due := h.promoteAll()
		if len(due) != 1 || due[0] != now+wantDelay {
			t.Fatalf("attempt %d: due %v, want [now+%d ms]", attempt+1, due, wantDelay)
		}
	}
	h.waitHandled(1)
	assertEqual(t, "plain", h.list("plain"), []string{"trt/abc"})
	assertEqual(t, "out", h.list("out"), []string{"made/abc/x"})
	if h.rdb.Exists(ctx, keyspace.FetchAttempts("resc:", "in")).Val() != 0 {
		t.Error("attempts not forgotten after the commit")
	}
	if n.Load() != 4 {
		t.Errorf("%d requests, want 4", n.Load())
	}
	if !strings.Contains(h.logs.String(), "fetch failed: event scheduled again") {
		t.Error("no log line for the retry")
	}
}

// TestFetchRetriesExhausted: past its last attempt the event goes to the
// dead-letter list with the number of attempts and the last reason.
func TestFetchRetriesExhausted(t *testing.T) {
	t.Parallel()
	s, n := failingServer(t, 1000, "")
	h := retryHarness(t, s.URL, 2)
	h.start()
	h.push("trt/abc")
	testutil.Eventually(t, "the first retry", func() bool { return h.w.stats.Retried.Load() == 1 })
	h.promoteAll()
	h.waitHandled(1)
	e := h.onlyDead()
	if e.Event != "trt/abc" || e.Attempts != 2 || !strings.HasPrefix(e.Reason, "fetch failed 2 times, the last: rule \"children\"") || !strings.Contains(e.Reason, "503") {
		t.Errorf("dead entry %+v", e)
	}
	if got := h.list("plain"); len(got) != 0 {
		t.Errorf("a task of a dead-lettered event was pushed: %q", got)
	}
	if h.rdb.Exists(context.Background(), keyspace.FetchAttempts("resc:", "in")).Val() != 0 {
		t.Error("attempts not forgotten after dead-lettering")
	}
	if c := h.rdb.ZCard(context.Background(), keyspace.DelaySchedule("resc:", "in")).Val(); c != 0 {
		t.Errorf("delay schedule holds %d", c)
	}
	if n.Load() != 2 {
		t.Errorf("%d requests, want 2", n.Load())
	}
}

func assertEqual(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func sha1hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestCommitScriptRetryBranches runs commit.lua's 'retry' mode and its
// bookkeeping (attempts forgotten, trace contexts) branch by branch against
// a real Redis.
func TestCommitScriptRetryBranches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nowMs := fixedNow.UnixMilli()
	field := sha1hex("ev")
	attemptsKey := keyspace.FetchAttempts("resc:", "in")
	schedKey := keyspace.DelaySchedule("resc:", "in")
	run := func(h *harness, it *item) []any {
		t.Helper()
		reply, err := h.commitOne(ctx, it)
		if err != nil {
			t.Fatal(err)
		}
		return reply
	}
	newH := func(t *testing.T) *harness {
		return newHarness(t, nil, nil, func(_ *config.Watcher, o *Options) {
			o.Retry = RetrySettings{Attempts: 3, Delay: time.Second, MaxDelay: 10 * time.Second, AttemptsTTL: time.Hour}
		})
	}
	retry := func() *item { return &item{event: "ev", outcome: outcomeRetry, reason: "because", seq: 7} }

	t.Run("scheduled: attempts counted, due after the delay", func(t *testing.T) {
		h := newH(t)
		h.rdb.LPush(ctx, "in/taken/r1", "ev")
		h.rdb.HSet(ctx, attemptsKey, field, "1 "+strconv.FormatInt(nowMs-1000, 10))
		reply := run(h, retry())
		if reply[0] != int64(codeRetryScheduled) || reply[1] != int64(2) || reply[3] != strconv.FormatInt(nowMs+2000, 10) {
			t.Fatalf("reply %v, want {7, 2, 0, now+2000}", reply)
		}
		assertEqual(t, "taken", h.list("in/taken/r1"), nil)
		if v := h.rdb.HGet(ctx, attemptsKey, field).Val(); v != "2 "+strconv.FormatInt(nowMs, 10) {
			t.Errorf("attempts %q", v)
		}
		if ttl, want := h.rdb.PTTL(ctx, attemptsKey).Val(), h.w.opts.Retry.AttemptsTTL; ttl <= want-time.Minute || ttl > want {
			t.Errorf("attempts TTL %v, want %v", ttl, want)
		}
		zs := h.rdb.ZRangeWithScores(ctx, schedKey, 0, -1).Val()
		if len(zs) != 1 || !strings.HasSuffix(zs[0].Member.(string), ":ev") || int64(zs[0].Score) != nowMs+2000 {
			t.Errorf("schedule %v", zs)
		}
	})
	t.Run("a count older than the TTL is forgotten", func(t *testing.T) {
		h := newH(t)
		h.rdb.LPush(ctx, "in/taken/r1", "ev")
		h.rdb.HSet(ctx, attemptsKey, field, "2 "+strconv.FormatInt(nowMs-2*time.Hour.Milliseconds(), 10))
		if reply := run(h, retry()); reply[0] != int64(codeRetryScheduled) || reply[1] != int64(1) {
			t.Fatalf("reply %v, want attempt 1", reply)
		}
	})
	t.Run("last attempt: nothing written", func(t *testing.T) {
		h := newH(t)
		h.rdb.LPush(ctx, "in/taken/r1", "ev")
		h.rdb.HSet(ctx, attemptsKey, field, "2 "+strconv.FormatInt(nowMs, 10))
		if reply := run(h, retry()); reply[0] != int64(codeRetryExhausted) || reply[1] != int64(3) {
			t.Fatalf("reply %v, want {6, 3}", reply)
		}
		assertEqual(t, "taken", h.list("in/taken/r1"), []string{"ev"})
		if h.rdb.Exists(ctx, schedKey).Val() != 0 {
			t.Error("scheduled anyway")
		}
	})
	t.Run("not owned: nothing written", func(t *testing.T) {
		h := newH(t)
		if reply := run(h, retry()); reply[0] != int64(codeNotOwned) {
			t.Fatalf("reply %v, want not owned", reply)
		}
		if h.rdb.Exists(ctx, schedKey, attemptsKey).Val() != 0 {
			t.Error("written although not owned")
		}
	})
	for name, key := range map[string]string{"attempts": attemptsKey, "schedule": schedKey} {
		t.Run(name+" of the wrong type: nothing written", func(t *testing.T) {
			h := newH(t)
			h.rdb.LPush(ctx, "in/taken/r1", "ev")
			h.rdb.Set(ctx, key, "x", 0)
			reply := run(h, retry())
			if reply[0] != int64(codeBadRetryKeys) || !strings.Contains(reply[3].(string), key+" is a string") {
				t.Fatalf("reply %v, want code 8 naming %s", reply, key)
			}
			assertEqual(t, "taken", h.list("in/taken/r1"), []string{"ev"})
		})
	}
	t.Run("commit forgets the attempts and the event's trace context, stores the tasks'", func(t *testing.T) {
		h := newH(t)
		h.rdb.LPush(ctx, "in/taken/r1", "ev")
		h.rdb.HSet(ctx, attemptsKey, field, "1 1", sha1hex("other"), "1 1")
		evTrace := keyspace.TraceContext("resc:", "in", "ev")
		h.rdb.Set(ctx, evTrace, "00-aa-bb-01", 0)
		h.rdb.ZAdd(ctx, "s", redisZ("old"))
		it := &item{event: "ev", tasks: []rules.Task{{Task: "new", Queue: "q", Set: "s", HasSet: true}, {Task: "old", Queue: "q", Set: "s", HasSet: true}},
			trace: &eventTrace{parent: []string{"00-tp-new-01", "00-tp-old-01"}}, fetched: true}
		reply := run(h, it)
		if reply[0] != int64(codeCommitted) || reply[3] != "10" {
			t.Fatalf("reply %v, want committed with detail 10", reply)
		}
		if h.rdb.HExists(ctx, attemptsKey, field).Val() || !h.rdb.HExists(ctx, attemptsKey, sha1hex("other")).Val() {
			t.Error("the event's attempts not forgotten, or another's forgotten")
		}
		if h.rdb.Exists(ctx, evTrace).Val() != 0 {
			t.Error("the event's trace context outlived its commit")
		}
		if v := h.rdb.Get(ctx, keyspace.TraceContext("resc:", "q", "new")).Val(); v != "00-tp-new-01" {
			t.Errorf("trace context of the pushed task = %q", v)
		}
		if ttl := h.rdb.PTTL(ctx, keyspace.TraceContext("resc:", "q", "new")).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
			t.Errorf("trace context TTL %v, want the 1 h default", ttl)
		}
		if h.rdb.Exists(ctx, keyspace.TraceContext("resc:", "q", "old")).Val() != 0 {
			t.Error("trace context stored for a task skipped by its set")
		}
	})
	t.Run("busy: scheduled after the first delay, no attempt counted", func(t *testing.T) {
		h := newH(t)
		h.rdb.LPush(ctx, "in/taken/r1", "ev")
		it := retry()
		it.outcome = outcomeRetryBusy
		reply := run(h, it)
		if reply[0] != int64(codeRetryScheduled) || reply[1] != int64(0) || reply[3] != strconv.FormatInt(nowMs+1000, 10) {
			t.Fatalf("reply %v, want {7, 0, 0, now+1000}", reply)
		}
		if h.rdb.Exists(ctx, attemptsKey).Val() != 0 {
			t.Error("a busy host counted an attempt")
		}
		if reply := run(h, it); reply[0] != int64(codeNotOwned) {
			t.Errorf("busy again without the event: reply %v, want not owned", reply)
		}
	})
	t.Run("dead-lettering forgets the attempts and the event's trace context", func(t *testing.T) {
		h := newH(t)
		h.rdb.LPush(ctx, "in/taken/r1", "ev")
		h.rdb.HSet(ctx, attemptsKey, field, "2 1")
		evTrace := keyspace.TraceContext("resc:", "in", "ev")
		h.rdb.Set(ctx, evTrace, "00-aa-bb-01", 0)
		if reply := run(h, &item{event: "ev", outcome: outcomeDead, reason: "because", fetched: true, trace: &eventTrace{}}); reply[0] != int64(codeDeadLettered) {
			t.Fatalf("reply %v", reply)
		}
		if h.rdb.Exists(ctx, attemptsKey, evTrace).Val() != 0 {
			t.Error("attempts or trace context left behind")
		}
	})
	t.Run("an event without fetches leaves the attempts alone", func(t *testing.T) {
		h := newH(t)
		h.rdb.LPush(ctx, "in/taken/r1", "ev")
		h.rdb.HSet(ctx, attemptsKey, field, "2 1")
		if reply := run(h, &item{event: "ev", tasks: []rules.Task{{Task: "t", Queue: "q"}}}); reply[0] != int64(codeCommitted) {
			t.Fatalf("reply %v", reply)
		}
		if !h.rdb.HExists(ctx, attemptsKey, field).Val() {
			t.Error("attempts touched by the commit of an event without fetches")
		}
	})
	t.Run("attempts of the wrong type do not stop a commit", func(t *testing.T) {
		h := newH(t)
		h.rdb.LPush(ctx, "in/taken/r1", "ev")
		h.rdb.Set(ctx, attemptsKey, "x", 0)
		if reply := run(h, &item{event: "ev", fetched: true, tasks: []rules.Task{{Task: "t", Queue: "q"}}}); reply[0] != int64(codeCommitted) {
			t.Fatalf("reply %v, want committed", reply)
		}
		assertEqual(t, "q", h.list("q"), []string{"t"})
	})
	t.Run("a bad argument: nothing written", func(t *testing.T) {
		h := newH(t)
		h.rdb.LPush(ctx, "in/taken/r1", "ev")
		h.w.traceTTL = "0"
		reply := run(h, &item{event: "ev", tasks: []rules.Task{{Task: "t", Queue: "q"}}, trace: &eventTrace{parent: []string{"00-x-01"}}})
		if reply[0] != int64(codeBadArgument) {
			t.Fatalf("reply %v, want a bad argument", reply)
		}
		assertEqual(t, "taken", h.list("in/taken/r1"), []string{"ev"})
		assertEqual(t, "q", h.list("q"), nil)
	})
}

func redisZ(m string) redis.Z { return redis.Z{Score: 1, Member: m} }

// TestSlowHostDoesNotBlockOthers: with fetch_concurrency 1, a host that
// does not answer holds one event in flight; two more for it wait for a
// slot while an event for another host is handled, then are scheduled again
// after the longest wait without counting an attempt.
func TestSlowHostDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte(`{"name":"s"}`))
	}))
	defer slow.Close()
	defer close(release)
	fast, _ := fetchServer(t, 200, `{"name":"f"}`)
	rs := func(name, prefix, base string) config.Rule {
		r := rule(name, `^`+prefix+`/(?P<id>\w+)$`, mk("${id}/${c.name}", "out", ""))
		r.Fetch = []config.Fetcher{{URL: base + "/x/${id}", Returns: "c"}}
		return r
	}
	h := newHarness(t, []config.Rule{rs("slow", "s", slow.URL), rs("fast", "f", fast.URL)},
		fetch.New(fetch.Options{Settings: config.FetchSettings{Timeout: time.Minute, MaxBody: 1 << 20}}),
		func(c *config.Watcher, o *Options) { c.FetchConcurrency, c.Concurrency = 1, 4 })
	h.start()
	h.push("s/1")
	<-entered // s/1 in flight
	h.push("s/2", "s/3")
	h.push("f/1")
	testutil.Eventually(t, "the other host's event handled", func() bool { return equal(h.list("out"), []string{"1/f"}) })
	testutil.Eventually(t, "the waiting events scheduled again", func() bool { return h.w.stats.Retried.Load() == 2 })
	ctx := context.Background()
	if h.rdb.Exists(ctx, keyspace.FetchAttempts("resc:", "in")).Val() != 0 {
		t.Error("a busy host counted as a failed attempt")
	}
	var scheduled []string
	for _, z := range h.rdb.ZRangeWithScores(ctx, keyspace.DelaySchedule("resc:", "in"), 0, -1).Val() {
		m := z.Member.(string)
		scheduled = append(scheduled, m[strings.IndexByte(m, ':')+1:])
		if int64(z.Score) != fixedNow.UnixMilli()+DefaultRetryDelay.Milliseconds() {
			t.Errorf("%s due at %v, want after the retry delay", m, z.Score)
		}
	}
	slices.Sort(scheduled)
	assertEqual(t, "scheduled", scheduled, []string{"s/2", "s/3"})
	assertEqual(t, "taken", h.list(h.w.TakenList()), []string{"s/1"})
}

// TestRetrySettingsDefaults: zero fields take the defaults, and the
// attempts outlive the longest wait so that long delays still end in the
// dead-letter list.
func TestRetrySettingsDefaults(t *testing.T) {
	t.Parallel()
	got := RetrySettings{}.WithDefaults()
	want := RetrySettings{Attempts: 8, Delay: 5 * time.Second, MaxDelay: 10 * time.Minute, AttemptsTTL: 24 * time.Hour}
	if got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	long := RetrySettings{Delay: time.Hour, MaxDelay: 25 * time.Hour}.WithDefaults()
	if long.AttemptsTTL < 51*time.Hour {
		t.Errorf("attempts TTL %v with a 25 h delay: the count would be forgotten between attempts", long.AttemptsTTL)
	}
	if low := (RetrySettings{Delay: time.Minute, MaxDelay: time.Second}).WithDefaults(); low.MaxDelay != time.Minute {
		t.Errorf("max delay below the delay: %v, want the delay", low.MaxDelay)
	}
}

// TestFetchRetryPromotedByRecovery: end to end with the leader's own
// promotion (recovery.Promote, promote.lua): a failed fetch's event comes
// back when due, and only then, and is handled once.
func TestFetchRetryPromotedByRecovery(t *testing.T) {
	t.Parallel()
	s, _ := failingServer(t, 1, `{"name":"x"}`)
	h := retryHarness(t, s.URL, 3)
	h.start()
	h.push("trt/abc")
	testutil.Eventually(t, "the event scheduled again", func() bool { return h.w.stats.Retried.Load() == 1 })
	ctx := context.Background()
	d, err := script.Detect(ctx, h.rdb)
	if err != nil {
		t.Fatal(err)
	}
	now := fixedNow
	rec := recovery.New(h.rdb, []recovery.Watched{{InputQueue: "in"}}, nil, recovery.Options{Settings: recovery.Settings{Now: func() time.Time { return now }}, Dialect: d})
	if n, err := rec.Promote(ctx); err != nil || n != 0 {
		t.Fatalf("promoted %d (%v) before the event was due", n, err)
	}
	now = fixedNow.Add(time.Second)
	if n, err := rec.Promote(ctx); err != nil || n != 1 {
		t.Fatalf("promoted %d (%v) once due, want 1", n, err)
	}
	h.waitHandled(1)
	assertEqual(t, "out", h.list("out"), []string{"made/abc/x"})
}
