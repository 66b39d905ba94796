package worker

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/script"
)

// The worker's scripts, branch by branch: Redis before, call, Redis after.
// Each case's keys carry its own prefix (c<i>:), on one server per test.

type (
	data = redistest.Data
	list = redistest.List
	hash = redistest.Hash
	zset = redistest.ZSet
)

// scriptCase is one row: KEYS and ARGV without the case prefix (keys are
// prefixed by run), the reply, and Redis after (nil: unchanged).
type scriptCase struct {
	name          string
	before, after data
	keys          []string
	args          []any
	want          any // []int64 or []string
}

func runScriptCases(t *testing.T, s *script.Script, strs bool, cases []scriptCase) {
	t.Helper()
	rdb := redistest.Start(t).Client()
	d, err := script.Detect(context.Background(), rdb)
	if err != nil || d.Legacy {
		t.Fatalf("Detect: %v %v", d, err)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := fmt.Sprintf("c%d:", i)
			redistest.Load(t, rdb, redistest.Prefixed(p, tc.before))
			keys := make([]string, len(tc.keys))
			for j, k := range tc.keys {
				keys[j] = p + k
			}
			cmd := s.Run(context.Background(), d, rdb, keys, tc.args...)
			var got any
			if strs {
				got, err = cmd.StringSlice()
			} else {
				got, err = cmd.Int64Slice()
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("reply %#v %v, want %#v", got, err, tc.want)
			}
			want := tc.after
			if want == nil {
				want = tc.before
			}
			redistest.CheckAfter(t, rdb, p, want)
		})
	}
}

// with returns d with the key k set to v, or without k when v is nil.
func with(d data, k string, v any) data {
	out := data{}
	for key, val := range d {
		if key != k {
			out[key] = val
		}
	}
	if v != nil {
		out[k] = v
	}
	return out
}

func TestScriptsLoad(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	d, err := script.Detect(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*script.Script{"take": takeScript, "complete": completeScript, "fail": failScript, "fence": fenceScript} {
		if err := s.Load(ctx, d, rdb); err != nil {
			t.Fatalf("%s.lua does not load: %v", name, err)
		}
		if ok, err := rdb.ScriptExists(ctx, s.Hash(d)).Result(); err != nil || !ok[0] {
			t.Fatalf("%s.lua not known by its hash: %v %v", name, ok, err)
		}
	}
}

// take.lua: KEYS queue, taken, fence, failures, set (or the queue), and
// in mode 'moved' the task's trace context.
func TestTakeScript(t *testing.T) {
	st := keyspace.StampReplays
	sha := sha1Hex("b")
	base := data{"q": list{"c", "b", "a"}, "fence": "tok", "set": zset{"a": 1, "b": 1, "x": 1}, "fails": hash{sha: "2"}}
	keys := []string{"q", "taken", "fence", "fails", "set"}
	noSet := []string{"q", "taken", "fence", "fails", "q"}
	moved := append(append([]string{}, keys...), "trace")
	runScriptCases(t, takeScript, true, []scriptCase{
		{name: "take: oldest first, out of the set, with failure counts",
			before: base, keys: keys, args: []any{"tok", "take", 2, 100},
			want:  []string{"1", "a", "0", "b", "2"},
			after: data{"q": list{"c"}, "taken": list{"b", "a"}, "fence": "tok", "set": zset{"x": 1}, "fails": hash{sha: "2"}}},
		{name: "take: the byte budget stops it, one task at least",
			before: base, keys: keys, args: []any{"tok", "take", 10, 1},
			want:  []string{"1", "a", "0"},
			after: with(with(with(base, "q", list{"c", "b"}), "taken", list{"a"}), "set", zset{"b": 1, "x": 1})},
		{name: "take: a stamped entry stays stamped, the set member and field are the bare task",
			before: data{"q": list{st(2, "b")}, "fence": "tok", "set": zset{"b": 1}, "fails": hash{sha: "1"}},
			keys:   keys, args: []any{"tok", "take", 5, 100}, want: []string{"1", st(2, "b"), "1"},
			after: data{"taken": list{st(2, "b")}, "fence": "tok", "fails": hash{sha: "1"}}},
		{name: "take: no dedup set (the queue in its place)",
			before: data{"q": list{"a"}, "fence": "tok", "set": zset{"a": 1}}, keys: noSet, args: []any{"tok", "take", 5, 100},
			want: []string{"1", "a", "0"}, after: data{"taken": list{"a"}, "fence": "tok", "set": zset{"a": 1}}},
		{name: "take: an empty queue", before: data{"fence": "tok"}, keys: keys, args: []any{"tok", "take", 5, 100}, want: []string{"1"}},
		{name: "fenced: another token", before: with(base, "fence", "other"), keys: keys, args: []any{"tok", "take", 5, 100}, want: []string{"0"}},
		{name: "fenced: no fence", before: with(base, "fence", nil), keys: keys, args: []any{"tok", "take", 5, 100}, want: []string{"0"}},
		{name: "fenced: the fence not a string", before: with(base, "fence", list{"tok"}), keys: keys, args: []any{"tok", "take", 5, 100}, want: []string{"0"}},
		{name: "queue not a list", before: with(base, "q", "s"), keys: keys, args: []any{"tok", "take", 5, 100}, want: []string{"2"}},
		{name: "taken list not a list", before: with(base, "taken", "s"), keys: keys, args: []any{"tok", "take", 5, 100}, want: []string{"3"}},
		{name: "failure counts not a hash", before: with(base, "fails", "s"), keys: keys, args: []any{"tok", "take", 5, 100}, want: []string{"4"}},
		{name: "dedup set not a sorted set", before: with(base, "set", "s"), keys: keys, args: []any{"tok", "take", 5, 100}, want: []string{"5"}},
		{name: "bad count", before: base, keys: keys, args: []any{"tok", "take", 0, 100}, want: []string{"6"}},
		{name: "bad mode", before: base, keys: keys, args: []any{"tok", "give", 1, 100}, want: []string{"6"}},
		{name: "too few keys", before: base, keys: keys[:4], args: []any{"tok", "take", 1, 100}, want: []string{"6"}},
		{name: "moved without its trace context key", before: base, keys: keys, args: []any{"tok", "moved", "a"}, want: []string{"6"}},
		{name: "moved: out of the set, failure count and trace context read",
			before: data{"taken": list{"b"}, "fence": "tok", "set": zset{"b": 1, "x": 1}, "fails": hash{sha: "2"}, "trace": "00-tp"},
			keys:   moved, args: []any{"tok", "moved", "b"}, want: []string{"1", "b", "2", "00-tp"},
			after: data{"taken": list{"b"}, "fence": "tok", "set": zset{"x": 1}, "fails": hash{sha: "2"}, "trace": "00-tp"}},
		{name: "moved: no trace context, no failure",
			before: data{"taken": list{"a"}, "fence": "tok"}, keys: moved, args: []any{"tok", "moved", "a"}, want: []string{"1", "a", "0", ""}},
		{name: "moved, fenced: nothing written, the entry stays",
			before: data{"taken": list{"a"}, "fence": "other", "set": zset{"a": 1}}, keys: moved, args: []any{"tok", "moved", "a"}, want: []string{"0"}},
	})
}

// complete.lua: KEYS taken, fence, failures, done (or the taken list),
// then per task its trace context key and its done event's.
func TestCompleteScript(t *testing.T) {
	sa, sb := sha1Hex("a"), sha1Hex("b")
	keys := []string{"taken", "fence", "fails", "done", "ta", "tda", "tb", "tdb"}
	base := data{"taken": list{"b", "a"}, "fence": "tok", "fails": hash{sa: "1", sb: "2", "other": "1"}, "ta": "00-a", "tb": "00-b"}
	args := func(push string, tpa, tpb string) []any {
		return []any{"tok", 60000, push, "a", sa, "a-done", tpa, "b", sb, "b-done", tpb}
	}
	runScriptCases(t, completeScript, false, []scriptCase{
		{name: "both completed: done events pushed, trace contexts moved, counts removed",
			before: base, keys: keys, args: args("1", "00-new", ""), want: []int64{1, 1, 1},
			after: data{"fence": "tok", "fails": hash{"other": "1"}, "done": list{"b-done", "a-done"}, "tda": "00-new", "tdb": "00-b"}},
		{name: "one no longer in the taken list: nothing for it",
			before: with(base, "taken", list{"b"}), keys: keys, args: args("1", "", ""), want: []int64{1, 0, 1},
			after: data{"fence": "tok", "fails": hash{sa: "1", "other": "1"}, "ta": "00-a", "done": list{"b-done"}, "tdb": "00-b"}},
		{name: "no done events",
			before: base, keys: []string{"taken", "fence", "fails", "taken", "ta", "tda", "tb", "tdb"}, args: args("0", "", ""),
			want: []int64{1, 1, 1}, after: data{"fence": "tok", "fails": hash{"other": "1"}}},
		{name: "fenced: another token", before: with(base, "fence", "other"), keys: keys, args: args("1", "", ""), want: []int64{0}},
		{name: "fenced: no fence", before: with(base, "fence", nil), keys: keys, args: args("1", "", ""), want: []int64{0}},
		{name: "taken list not a list", before: with(base, "taken", "s"), keys: keys, args: args("1", "", ""), want: []int64{2}},
		{name: "failure counts not a hash", before: with(base, "fails", "s"), keys: keys, args: args("1", "", ""), want: []int64{3}},
		{name: "done queue not a list", before: with(base, "done", "s"), keys: keys, args: args("1", "", ""), want: []int64{4}},
		{name: "done queue of another type unused without done events", before: with(with(base, "done", "s"), "taken", list{"x"}),
			keys: []string{"taken", "fence", "fails", "done", "ta", "tda", "tb", "tdb"}, args: args("0", "", ""), want: []int64{1, 0, 0}},
		{name: "keys and arguments do not match", before: base, keys: keys[:6], args: args("1", "", ""), want: []int64{5}},
		{name: "bad expiry", before: base, keys: keys, args: []any{"tok", 0, "1", "a", sa, "a-done", ""}, want: []int64{5}},
	})
}

// fail.lua: KEYS taken, fence, failures, schedule, dead list, trace.
func TestFailScript(t *testing.T) {
	st := keyspace.StampReplays
	sa := sha1Hex("a")
	keys := []string{"taken", "fence", "fails", "sched", "dead", "trace"}
	base := data{"taken": list{"a"}, "fence": "tok", "fails": hash{sa: "1"}, "trace": "00-a"}
	retry := func(entry string, n int) []any {
		return []any{"tok", entry, sa, "retry", n, 1000, 5000, "tag", 1_000_000, ""}
	}
	dead := []any{"tok", "a", sa, "dead", 3, 0, 0, "", 0, `{"event":"a"}`}
	runScriptCases(t, failScript, false, []scriptCase{
		{name: "retry: first failure, due after the first delay",
			before: base, keys: keys, args: retry("a", 1), want: []int64{1, 1000},
			after: data{"fence": "tok", "fails": hash{sa: "1"}, "sched": zset{"tag:a": 1_001_000}, "trace": "00-a"}},
		{name: "retry: the delay doubles with each failure",
			before: base, keys: keys, args: retry("a", 3), want: []int64{1, 4000},
			after: data{"fence": "tok", "fails": hash{sa: "3"}, "sched": zset{"tag:a": 1_004_000}, "trace": "00-a"}},
		{name: "retry: the delay is capped",
			before: base, keys: keys, args: retry("a", 9), want: []int64{1, 5000},
			after: data{"fence": "tok", "fails": hash{sa: "9"}, "sched": zset{"tag:a": 1_005_000}, "trace": "00-a"}},
		{name: "retry: a stamped entry keeps its stamp in the schedule",
			before: with(base, "taken", list{st(1, "a")}), keys: keys, args: retry(st(1, "a"), 1), want: []int64{1, 1000},
			after: data{"fence": "tok", "fails": hash{sa: "1"}, "sched": zset{"tag:" + st(1, "a"): 1_001_000}, "trace": "00-a"}},
		{name: "dead: to the dead-letter list, count and trace context removed",
			before: base, keys: keys, args: dead, want: []int64{1, 0},
			after: data{"fence": "tok", "dead": list{`{"event":"a"}`}}},
		{name: "fenced: no longer in the taken list", before: with(base, "taken", list{"b"}), keys: keys, args: dead, want: []int64{0}},
		{name: "fenced: another token", before: with(base, "fence", "other"), keys: keys, args: dead, want: []int64{0}},
		{name: "taken list not a list", before: with(base, "taken", "s"), keys: keys, args: dead, want: []int64{2}},
		{name: "failure counts not a hash", before: with(base, "fails", "s"), keys: keys, args: dead, want: []int64{3}},
		{name: "schedule not a sorted set", before: with(base, "sched", "s"), keys: keys, args: retry("a", 1), want: []int64{4}},
		{name: "dead list not a list", before: with(base, "dead", "s"), keys: keys, args: dead, want: []int64{5}},
		{name: "bad mode", before: base, keys: keys, args: []any{"tok", "a", sa, "later", 1, 1000, 5000, "tag", 1, ""}, want: []int64{6}},
		{name: "retry without a count", before: base, keys: keys, args: []any{"tok", "a", sa, "retry", 0, 1000, 5000, "tag", 1, ""}, want: []int64{6}},
	})
}

// fence.lua: KEYS the fence.
func TestFenceScript(t *testing.T) {
	keys := []string{"fence"}
	runScriptCases(t, fenceScript, false, []scriptCase{
		{name: "set: writes the token", keys: keys, args: []any{"set", "tok", 60000}, want: []int64{1}, after: data{"fence": "tok"}},
		{name: "set: over another token", before: data{"fence": "old"}, keys: keys, args: []any{"set", "tok", 60000}, want: []int64{1}, after: data{"fence": "tok"}},
		{name: "refresh: its own token", before: data{"fence": "tok"}, keys: keys, args: []any{"refresh", "tok", 60000}, want: []int64{1}},
		{name: "refresh: gone", keys: keys, args: []any{"refresh", "tok", 60000}, want: []int64{0}},
		{name: "refresh: another token", before: data{"fence": "other"}, keys: keys, args: []any{"refresh", "tok", 60000}, want: []int64{0}},
		{name: "release: its own token", before: data{"fence": "tok"}, keys: keys, args: []any{"release", "tok"}, want: []int64{1}, after: data{}},
		{name: "release: another token", before: data{"fence": "other"}, keys: keys, args: []any{"release", "tok"}, want: []int64{0}},
		{name: "not a string", before: data{"fence": list{"tok"}}, keys: keys, args: []any{"set", "tok", 60000}, want: []int64{2}},
		{name: "bad op", before: data{"fence": "tok"}, keys: keys, args: []any{"drop", "tok", 60000}, want: []int64{3}},
		{name: "set without a TTL", keys: keys, args: []any{"set", "tok"}, want: []int64{3}},
	})
}
