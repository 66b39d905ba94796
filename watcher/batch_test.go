package watcher

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/rules"
)

// replyCodes returns the code of each reply.
func replyCodes(replies [][]any) []int64 {
	out := make([]int64, len(replies))
	for i, r := range replies {
		out[i], _ = r[0].(int64)
	}
	return out
}

// TestCommitScriptBatch runs one commit.lua call over events with every
// outcome: each event's outcome and writes are its own, as with one call
// per event.
func TestCommitScriptBatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, nil)
	ctx := context.Background()
	h.rdb.LPush(ctx, "in/taken/r1", "a", "c", "d", "e", "f")
	h.rdb.HSet(ctx, "hash", "f", "v")
	items := []*item{
		{event: "a", tasks: []rules.Task{{Task: "ta", Queue: "q", Set: "s", HasSet: true}}},
		{event: "b", tasks: []rules.Task{{Task: "tb", Queue: "q"}}}, // not in the taken list
		{event: "c", tasks: []rules.Task{{Task: "tc", Queue: "q"}, {Task: "tc2", Queue: "hash"}}},
		{event: "d", outcome: outcomeDead, reason: "because"},
		{event: "e", outcome: outcomeRetryBusy, reason: "busy host", seq: 1},
		{event: "f", tasks: []rules.Task{{Task: "ta", Queue: "q", Set: "s", HasSet: true}, {Task: "tf", Queue: "q2"}}},
	}
	replies, err := h.runCommit(ctx, items...)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{codeCommitted, codeNotOwned, codeBadDestination, codeDeadLettered, codeRetryScheduled, codeCommitted}
	if got := replyCodes(replies); !equalInts(got, want) {
		t.Fatalf("codes %v, want %v (replies %v)", got, want, replies)
	}
	if replies[2][3] != "queue hash is a hash, not a list" {
		t.Errorf("bad destination reason %q", replies[2][3])
	}
	if replies[5][1] != int64(1) || replies[5][2] != int64(1) {
		t.Errorf("f: pushed, deduplicated = %v, %v; want 1, 1 (ta deduplicated by a's commit)", replies[5][1], replies[5][2])
	}
	assertEqual(t, "q", h.list("q"), []string{"ta"})
	assertEqual(t, "q2", h.list("q2"), []string{"tf"})
	assertEqual(t, "taken", h.list("in/taken/r1"), []string{"c"})
	if n := len(h.list("in/dead")); n != 1 {
		t.Errorf("%d dead entries, want 1", n)
	}
	if n := h.rdb.ZCard(ctx, keyspace.DelaySchedule("resc:", "in")).Val(); n != 1 {
		t.Errorf("%d scheduled, want 1", n)
	}
}

// TestCommitScriptBatchTypes: a key's type as left by an earlier event of
// the same call is what a later event's validation sees.
func TestCommitScriptBatchTypes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("a queue written by one event is not a set for the next", func(t *testing.T) {
		h := newHarness(t, nil, nil, nil)
		h.rdb.LPush(ctx, "in/taken/r1", "a", "b")
		replies, err := h.runCommit(ctx,
			&item{event: "a", tasks: []rules.Task{{Task: "t", Queue: "k"}}},
			&item{event: "b", tasks: []rules.Task{{Task: "t", Queue: "q", Set: "k", HasSet: true}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := replyCodes(replies); !equalInts(got, []int64{codeCommitted, codeBadDestination}) || replies[1][3] != "set k is a list, not a sorted set" {
			t.Fatalf("replies %v", replies)
		}
		assertEqual(t, "k", h.list("k"), []string{"t"})
		assertEqual(t, "q", h.list("q"), nil)
	})
	t.Run("a key an event did not write keeps its type", func(t *testing.T) {
		h := newHarness(t, nil, nil, nil)
		h.rdb.LPush(ctx, "in/taken/r1", "b") // a is not owned: writes nothing
		replies, err := h.runCommit(ctx,
			&item{event: "a", tasks: []rules.Task{{Task: "t", Queue: "k"}}},
			&item{event: "b", tasks: []rules.Task{{Task: "t", Queue: "q", Set: "k", HasSet: true}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := replyCodes(replies); !equalInts(got, []int64{codeNotOwned, codeCommitted}) {
			t.Fatalf("replies %v", replies)
		}
		if h.rdb.Type(ctx, "k").Val() != "zset" {
			t.Errorf("k is a %s, want the set of b", h.rdb.Type(ctx, "k").Val())
		}
	})
	t.Run("two events dead-lettered by one call", func(t *testing.T) {
		h := newHarness(t, nil, nil, nil)
		h.rdb.LPush(ctx, "in/taken/r1", "a", "b")
		replies, err := h.runCommit(ctx, &item{event: "a", outcome: outcomeDead, reason: "x"}, &item{event: "b", outcome: outcomeDead, reason: "y"})
		if err != nil {
			t.Fatal(err)
		}
		if got := replyCodes(replies); !equalInts(got, []int64{codeDeadLettered, codeDeadLettered}) {
			t.Fatalf("replies %v", replies)
		}
		if n := len(h.list("in/dead")); n != 2 {
			t.Errorf("%d dead entries, want 2", n)
		}
	})
}

// TestCommitScriptTraceKeyRoles: a trace context key that is also a queue
// or a set of the event, or holds another type, is refused before the
// event leaves the taken list, so that no write can fail after that.
func TestCommitScriptTraceKeyRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	traced := func(event string, tasks ...rules.Task) *item {
		return &item{event: event, trace: &eventTrace{parent: []string{"00-aa-01-01", "00-bb-01-01"}}, tasks: tasks}
	}
	taskKey := keyspace.TraceContext("resc:", "q1", "t1")
	tests := []struct {
		name   string
		before func(h *harness)
		it     *item
		reason string
	}{
		{"a task's trace context is another task's queue", nil,
			traced("ev", rules.Task{Task: "t1", Queue: "q1"}, rules.Task{Task: "t2", Queue: taskKey}),
			"key " + taskKey + " is both a trace context and a queue of this event"},
		{"a task's queue is the event's trace context", nil,
			traced("ev", rules.Task{Task: "t1", Queue: keyspace.TraceContext("resc:", "in", "ev")}),
			"key " + keyspace.TraceContext("resc:", "in", "ev") + " is both a trace context and a queue of this event"},
		{"a task's trace context is a list", func(h *harness) { h.rdb.LPush(ctx, taskKey, "x") },
			traced("ev", rules.Task{Task: "t1", Queue: "q1"}),
			"trace context " + taskKey + " is a list, not a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, nil, nil)
			h.rdb.LPush(ctx, "in/taken/r1", "ev")
			if tc.before != nil {
				tc.before(h)
			}
			reply, err := h.commitOne(ctx, tc.it)
			if err != nil {
				t.Fatal(err)
			}
			if reply[0] != int64(codeBadDestination) || reply[3] != tc.reason {
				t.Fatalf("reply %v, want code 3 %q", reply, tc.reason)
			}
			assertEqual(t, "taken", h.list("in/taken/r1"), []string{"ev"})
			assertEqual(t, "q1", h.list("q1"), nil)
		})
	}
}

// failingCommit makes a commit of b fail after b has left the taken list:
// a trace context TTL Redis refuses makes the SET of b's task's trace
// context fail (a and c are not traced). This stands for what cannot be
// checked up front: a server without "#!lua" running out of memory.
func failingCommit(h *harness) []*item {
	h.w.traceTTL = "99999999999999999999"
	ctx := context.Background()
	tr := &eventTrace{tracer: noop.NewTracerProvider().Tracer(""), ctx: ctx, span: trace.SpanFromContext(ctx), parent: []string{"00-aa-01-01"}}
	return []*item{
		{event: "a", tasks: []rules.Task{{Task: "ta", Queue: "q"}}},
		{event: "b", trace: tr, tasks: []rules.Task{{Task: "tb", Queue: "q"}}},
		{event: "c", tasks: []rules.Task{{Task: "tc", Queue: "q"}}},
	}
}

// TestCommitScriptBatchEventError: a command failing on one event fails
// that event alone (code 10), which goes back to the taken list; the events
// around it are committed.
func TestCommitScriptBatchEventError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, nil)
	ctx := context.Background()
	h.rdb.LPush(ctx, "in/taken/r1", "a", "b", "c")
	replies, err := h.runCommit(ctx, failingCommit(h)...)
	if err != nil {
		t.Fatal(err)
	}
	if got := replyCodes(replies); !equalInts(got, []int64{codeCommitted, codeScriptError, codeCommitted}) {
		t.Fatalf("replies %v", replies)
	}
	if why, _ := replies[1][3].(string); !strings.HasPrefix(why, "ERR") || replies[1][1] != int64(1) {
		t.Errorf("reply %v, want Redis' error and n 1 (it had left the taken list)", replies[1])
	}
	assertEqual(t, "q", h.list("q"), []string{"tc", "ta"})
	assertEqual(t, "taken", h.list("in/taken/r1"), []string{"b"})
}

// TestCommitBatchEventError: through commitBatch, the failing event is
// dead-lettered after maxScriptErrors tries while the others of its batch
// are committed once, at the first try.
func TestCommitBatchEventError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, nil)
	ctx := context.Background()
	h.rdb.LPush(ctx, "in/taken/r1", "a", "b", "c")
	if err := commitScript.Load(ctx, h.w.opts.Dialect, h.rdb); err != nil {
		t.Fatal(err)
	}
	h.rdb.ConfigResetStat(ctx)
	if left := h.w.commitBatch(ctx, failingCommit(h)); len(left) != 0 {
		t.Fatalf("%d left over", len(left))
	}
	assertEqual(t, "q", h.list("q"), []string{"tc", "ta"})
	assertEqual(t, "taken", h.list("in/taken/r1"), nil)
	// b had left the taken list when its commit failed: it is dead-lettered
	// at once, not committed again (which could push some tasks twice).
	if e := h.onlyDead(); e.Event != "b" || !strings.Contains(e.Reason, "commit script failed after some of its writes: ERR") {
		t.Errorf("dead entry %+v", e)
	}
	if n := evalshaCalls(t, h); n != 2 {
		t.Errorf("%d commit.lua calls, want 2: the batch, then b's dead-lettering", n)
	}
	s := &h.w.stats
	if s.Committed.Load() != 2 || s.NotOwned.Load() != 0 || s.DeadLettered.Load() != 1 {
		t.Errorf("committed %d, not owned %d, dead-lettered %d; want 2, 0, 1", s.Committed.Load(), s.NotOwned.Load(), s.DeadLettered.Load())
	}
	if logs := h.logs.String(); strings.Contains(logs, "redis unavailable") {
		t.Errorf("an event's error was taken for an outage:\n%s", logs)
	}
}

// TestCommitScriptBadRecord: a call whose records do not add up is refused
// before anything is written.
func TestCommitScriptBadRecord(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, nil)
	ctx := context.Background()
	h.rdb.LPush(ctx, "in/taken/r1", "a", "b")
	calls := h.w.commitCalls([]*item{
		{event: "a", tasks: []rules.Task{{Task: "ta", Queue: "q"}}},
		{event: "b", tasks: []rules.Task{{Task: "tb", Queue: "q"}}},
	}, fixedNow, false)
	for name, mod := range map[string]func(c *commitCall){
		"count too large":    func(c *commitCall) { c.args[len(c.args)-3] = 9 },
		"count not a number": func(c *commitCall) { c.args[len(c.args)-3] = "x" },
		"a key missing":      func(c *commitCall) { c.keys = c.keys[:len(c.keys)-1] },
		"a key left over":    func(c *commitCall) { c.keys = append(c.keys, "extra") },
		"odd task arguments": func(c *commitCall) {
			c.args[len(c.args)-3] = 1
			c.args = c.args[:len(c.args)-1]
		},
	} {
		c := calls[0]
		c.keys, c.args = append([]any(nil), c.keys...), append([]any(nil), c.args...)
		mod(&c)
		got, err := h.runCall(ctx, &c).Slice()
		if err != nil || len(got) != 2 || got[0] != int64(2) {
			t.Errorf("%s: %v, %v; want the bad-argument code 2 and why", name, got, err)
		}
		if _, err := parseReplies(got, 2); !errors.Is(err, errBadReply) {
			t.Errorf("%s: parseReplies: %v, want errBadReply", name, err)
		}
	}
	assertEqual(t, "q", h.list("q"), nil)
	assertEqual(t, "taken", h.list("in/taken/r1"), []string{"b", "a"})
}

// TestCommitCallsSplit: a batch making many tasks is split over calls of
// at most about maxCallArgs arguments, each event whole in one call, in
// order.
func TestCommitCallsSplit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, nil)
	var items []*item
	for i := range 100 {
		tasks := make([]rules.Task, 100)
		for j := range tasks {
			tasks[j] = rules.Task{Task: "t", Queue: "q"}
		}
		items = append(items, &item{event: string(rune('a' + i%26)), tasks: tasks})
	}
	calls := h.w.commitCalls(items, fixedNow, false)
	if len(calls) < 2 {
		t.Fatalf("%d calls for 20,000 task arguments", len(calls))
	}
	n := 0
	for _, c := range calls {
		if len(c.args) > maxCallArgs+4+2*100 {
			t.Errorf("a call of %d arguments", len(c.args))
		}
		for _, it := range c.items {
			if it != items[n] {
				t.Fatalf("item %d out of order", n)
			}
			n++
		}
	}
	if n != len(items) {
		t.Errorf("%d items in the calls, want %d", n, len(items))
	}
	if single := h.w.commitCalls(items[:3], fixedNow, true); len(single) != 3 {
		t.Errorf("single: %d calls for 3 items", len(single))
	}
}

func equalInts(a, b []int64) bool {
	return slices.Equal(a, b)
}

// TestCommitCallsSplitByBytes: big events go to calls of about
// maxCallBytes each (at least one event a call), in order.
func TestCommitCallsSplitByBytes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, nil)
	big := strings.Repeat("e", 1<<20)
	var items []*item
	for range 10 {
		items = append(items, &item{event: big, tasks: []rules.Task{{Task: "t", Queue: "q"}}})
	}
	items = append(items, &item{event: strings.Repeat("h", maxCallBytes+1)}, &item{event: "small"})
	var sizes []int
	for _, c := range h.w.commitCalls(items, fixedNow, false) {
		sizes = append(sizes, len(c.items))
		if len(c.items) > 1 && c.bytes-len(c.items[len(c.items)-1].entry) >= maxCallBytes {
			t.Errorf("a call of %d bytes before its last event", c.bytes)
		}
	}
	// 4 MiB of 1 MiB events a call (the 4th reaches the bound), the last
	// two with the huge one (the bound is checked before each event), then
	// the small one.
	if want := []int{4, 4, 3, 1}; !slices.Equal(sizes, want) {
		t.Errorf("events per call %v, want %v", sizes, want)
	}
}

// TestTakeScript: take.lua leaves the input queue and the taken list as
// the same number of BLMOVE RIGHT LEFT would (checked against them, on
// other keys), and returns the events oldest first; in chunks past Lua's
// unpack limit too.
func TestTakeScript(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, nil)
	ctx := context.Background()
	var events []any
	for i := range 2600 {
		events = append(events, "e"+strconv.Itoa(i))
	}
	for _, k := range []string{"in", "model/in"} {
		h.rdb.LPush(ctx, k, events...) // e0 is the oldest, at the right end
		h.rdb.LPush(ctx, k+"/taken", "before")
	}
	for _, n := range []int{1, 3, 1200, 5000} {
		reply, err := takeScript.Run(ctx, h.w.opts.Dialect, h.rdb, takeKeys, "take", n, 1<<30, 1<<20, "f").StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		got := takeDone(t, reply)
		var want []string
		for range n {
			ev, err := h.rdb.LMove(ctx, "model/in", "model/in/taken", "RIGHT", "LEFT").Result()
			if err != nil {
				break
			}
			want = append(want, ev)
		}
		assertEqual(t, "taken events", got, want)
		assertEqual(t, "input queue", h.list("in"), h.list("model/in"))
		assertEqual(t, "taken list", h.list("in/taken"), h.list("model/in/taken"))
	}
	if n := h.rdb.Exists(ctx, "in").Val(); n != 0 {
		t.Errorf("the emptied input queue still exists")
	}
	got, err := takeScript.Run(ctx, h.w.opts.Dialect, h.rdb, takeKeys, "take", 10, 1<<30, 1<<20, "f").StringSlice()
	if err != nil || !slices.Equal(got, []string{"1"}) {
		t.Errorf("take from an empty queue: %q, %v; want [1]", got, err)
	}
}

// takeDone returns the entries of take.lua's reply, which must be done.
func takeDone(t *testing.T, reply []string) []string {
	t.Helper()
	if len(reply) == 0 || reply[0] != "1" {
		t.Fatalf("take.lua replied %q, want code 1", reply)
	}
	return reply[1:]
}

func TestParseReplies(t *testing.T) {
	t.Parallel()
	got, err := parseReplies([]any{int64(1), int64(1), int64(2), int64(0), "10", int64(3), int64(0), int64(0), "queue q is a hash"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []commitReply{{1, 2, 0, "10"}, {3, 0, 0, "queue q is a hash"}}; !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range [][]any{nil, {int64(1)}, {int64(1), int64(1), int64(1), int64(0), ""}, {int64(1), int64(1), int64(1), int64(0), "", "x", int64(1), int64(0), ""},
		{int64(2), "bad record"}, {int64(0), int64(1), int64(1), int64(0), "", int64(1), int64(1), int64(0), ""}} {
		if _, err := parseReplies(bad, 2); err == nil {
			t.Errorf("%v for 2 events: no error", bad)
		}
	}
}

// evalshaCalls is how many EVALSHA the harness' server ran since its
// statistics were reset.
func evalshaCalls(t *testing.T, h *harness) int {
	t.Helper()
	for _, line := range strings.Split(h.rdb.Info(context.Background(), "commandstats").Val(), "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:calls="); ok {
			n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// takeKeys are take.lua's keys in the take tests.
var takeKeys = []string{"in", "in/taken", "resc:oversized:in"}

// TestTakeScriptBudget: a take stops once its events add up to the byte
// budget (at least one event taken), reading one event first and then
// more at a time only as far as the events seen say the budget allows; an
// event longer than the maximum is set aside in its place: its bytes go
// to the hash under a field of its own, its set-aside entry to the taken
// list.
func TestTakeScriptBudget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, nil)
	ctx := context.Background()
	take := func(n, budget, max int, field string) []string {
		t.Helper()
		got, err := takeScript.Run(ctx, h.w.opts.Dialect, h.rdb, takeKeys, "take", n, budget, max, field).StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		return takeDone(t, got)
	}
	ten := func(name string) string { return name + strings.Repeat("-", 10-len(name)) }
	big := strings.Repeat("B", 300) + "\xff"
	// Oldest at the right end: a1 a2 a3 a4 (10 bytes each), big, a5.
	h.rdb.LPush(ctx, "in", ten("a1"), ten("a2"), ten("a3"), ten("a4"), big, ten("a5"))
	assertEqual(t, "budget 25: three events", take(10, 25, 100, "f1"), []string{ten("a1"), ten("a2"), ten("a3")})
	assertEqual(t, "budget 1: one event", take(10, 1, 100, "f2"), []string{ten("a4")})
	aside := keyspace.SetAside(int64(len(big)), "f3-1", big[:keyspace.SetAsideHeadBytes])
	assertEqual(t, "the big event set aside, then the next", take(10, 1000, 100, "f3"), []string{aside, ten("a5")})
	if got := h.rdb.HGetAll(ctx, "resc:oversized:in").Val(); len(got) != 1 || got["f3-1"] != big {
		t.Fatalf("oversized hash %q, want the big event's exact bytes under f3-1", got)
	}
	assertEqual(t, "taken list", h.list("in/taken"), []string{ten("a5"), aside, ten("a4"), ten("a3"), ten("a2"), ten("a1")})
	if size, field, head, ok := keyspace.ParseSetAside(aside); !ok || size != 301 || field != "f3-1" || head != big[:200] {
		t.Errorf("ParseSetAside(%q) = %d %q %q %v", aside, size, field, head, ok)
	}

	// Two big ones in one take: a field each, in order.
	h.rdb.LPush(ctx, "in", ten("b1"), big, big)
	got := take(10, 100000, 100, "f4")
	want := []string{ten("b1"), keyspace.SetAside(301, "f4-2", big[:200]), keyspace.SetAside(301, "f4-3", big[:200])}
	assertEqual(t, "two big ones", got, want)
	if n := h.rdb.HLen(ctx, "resc:oversized:in").Val(); n != 3 {
		t.Errorf("oversized hash has %d fields, want 3", n)
	}

	// A replayed big one is set aside bare: its stamp counts in neither
	// its size nor its head nor its stored bytes.
	h.rdb.LPush(ctx, "in", keyspace.StampReplays(2, big))
	assertEqual(t, "a stamped big one", take(10, 100000, 100, "f5"), []string{keyspace.SetAside(301, "f5-1", big[:200])})
	if v := h.rdb.HGet(ctx, "resc:oversized:in", "f5-1").Val(); v != big {
		t.Errorf("f5-1 holds %q..., want the bare event", v[:20])
	}
	stamped := keyspace.StampReplays(1, big)
	h.rdb.LPush(ctx, "in/taken", stamped)
	if got, err := takeScript.Run(ctx, h.w.opts.Dialect, h.rdb, takeKeys, "aside", len(stamped), "f5b").StringSlice(); err != nil || !slices.Equal(got, []string{"1", keyspace.SetAside(301, "f5b", big[:200])}) {
		t.Errorf("aside of a stamped one: %q %v", got, err)
	}
	if v := h.rdb.HGet(ctx, "resc:oversized:in", "f5b").Val(); v != big {
		t.Errorf("f5b holds %q..., want the bare event", v[:20])
	}
	h.rdb.LPop(ctx, "in/taken")

	// Mode aside: the head of the taken list, when it has the size said.
	h.rdb.LPush(ctx, "in/taken", big)
	got, err := takeScript.Run(ctx, h.w.opts.Dialect, h.rdb, takeKeys, "aside", len(big)+1, "f6").StringSlice()
	if err != nil || !slices.Equal(got, []string{"0"}) || h.list("in/taken")[0] != big {
		t.Fatalf("aside of the wrong size: %q %v, want [0]; the head must stay", got, err)
	}
	got, err = takeScript.Run(ctx, h.w.opts.Dialect, h.rdb, takeKeys, "aside", len(big), "f6").StringSlice()
	want6 := keyspace.SetAside(int64(len(big)), "f6", big[:200])
	if err != nil || !slices.Equal(got, []string{"1", want6}) || h.list("in/taken")[0] != want6 {
		t.Fatalf("aside: %q %v, taken head %q", got, err, h.list("in/taken")[0])
	}
	if v := h.rdb.HGet(ctx, "resc:oversized:in", "f6").Val(); v != big {
		t.Fatalf("f6 holds %d bytes, want the big event", len(v))
	}
	// A field already in use is refused, nothing written.
	h.rdb.LPush(ctx, "in/taken", big)
	if got, err := takeScript.Run(ctx, h.w.opts.Dialect, h.rdb, takeKeys, "aside", len(big), "f6").StringSlice(); err != nil || len(got) != 2 || got[0] != "4" {
		t.Fatalf("a second event under field f6: %q, %v; want the bad-argument code 4", got, err)
	}
	if h.list("in/taken")[0] != big {
		t.Fatal("a refused aside changed the taken list")
	}
}

// TestTakeScriptWrongTakenList: a taken list of the wrong type is refused
// before any event leaves the input queue (a script is not rolled back).
func TestTakeScriptWrongTakenList(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, nil)
	ctx := context.Background()
	h.rdb.LPush(ctx, "in", "e1", "e2", "e3")
	h.rdb.Set(ctx, "in/taken", "x", 0)
	got, err := takeScript.Run(ctx, h.w.opts.Dialect, h.rdb, takeKeys, "take", 2, 1<<30, 1<<20, "f").StringSlice()
	if err != nil || !slices.Equal(got, []string{"2"}) {
		t.Fatalf("%q, %v; want [2]", got, err)
	}
	assertEqual(t, "input queue", h.list("in"), []string{"e3", "e2", "e1"})
	// The watcher names the key and the sentinel.
	h.rdb.Set(ctx, h.w.TakenList(), "x", 0)
	if _, err := h.w.takeNow(ctx, "take", 2, 1<<30, 1<<20); !errors.Is(err, ErrTakenType) || !errors.Is(err, script.ErrWrongType) {
		t.Errorf("takeNow: %v, want ErrTakenType and script.ErrWrongType", err)
	}
	h.rdb.Del(ctx, "in/taken")
	h.rdb.Set(ctx, "resc:oversized:in", "x", 0)
	if got, err := takeScript.Run(ctx, h.w.opts.Dialect, h.rdb, takeKeys, "take", 2, 1<<30, 1<<20, "f").StringSlice(); err != nil || !slices.Equal(got, []string{"3"}) {
		t.Errorf("oversized hash a string: %q, %v; want [3]", got, err)
	}
	if got, err := takeScript.Run(ctx, h.w.opts.Dialect, h.rdb, takeKeys, "move", 2, 1<<30, 1<<20, "f").StringSlice(); err != nil || len(got) != 2 || got[0] != "4" {
		t.Errorf("unknown mode: %q, %v; want code 4", got, err)
	}
	assertEqual(t, "input queue", h.list("in"), []string{"e3", "e2", "e1"})
}

// TestCommitScriptKeepsWrongTraceKey: dead-lettering a traced event whose
// trace context key holds something else leaves that key alone.
func TestCommitScriptKeepsWrongTraceKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, nil)
	ctx := context.Background()
	h.rdb.LPush(ctx, "in/taken/r1", "ev")
	key := keyspace.TraceContext("resc:", "in", "ev")
	h.rdb.LPush(ctx, key, "someone's")
	reply, err := h.commitOne(ctx, &item{event: "ev", outcome: outcomeDead, reason: "because", trace: &eventTrace{}})
	if err != nil || reply[0] != int64(codeDeadLettered) {
		t.Fatalf("reply %v, %v", reply, err)
	}
	assertEqual(t, key, h.list(key), []string{"someone's"})
}

func TestIsOutageReply(t *testing.T) {
	t.Parallel()
	for msg, want := range map[string]bool{
		"OOM command not allowed when used memory > 'maxmemory'.":           true,
		":1: OOM command not allowed when used memory > 'maxmemory'.":       true,
		"@user_script: 12: OOM command not allowed":                         true,
		"LOADING Redis is loading the dataset in memory":                    true,
		"BUSY Redis is busy running a script":                               true,
		"BUSYKEY Target key name already exists.":                           false,
		"WRONGTYPE Operation against a key holding the wrong kind of value": false,
		"ERR value is not an integer: OOM nowhere":                          false,
		":1: WRONGTYPE Operation against a key ROOM":                        false,
	} {
		if got := isOutageReply(msg); got != want {
			t.Errorf("isOutageReply(%q) = %v, want %v", msg, got, want)
		}
	}
}

// TestTakeScriptEmbedded runs take.lua on the embedded server (miniredis,
// the legacy dialect): RPOP with a count, as on redis-server.
func TestTakeScriptEmbedded(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	d, err := script.Detect(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	rdb.LPush(ctx, "in", "e1", "e2", "e3", "e4", "e5", strings.Repeat("x", 101))
	got, err := takeScript.Run(ctx, d, rdb, takeKeys, "take", 10, 1000, 100, "f").StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	got = takeDone(t, got)
	want := []string{"e1", "e2", "e3", "e4", "e5", keyspace.SetAside(101, "f-6", strings.Repeat("x", 101))}
	assertEqual(t, "taken", got, want)
}
