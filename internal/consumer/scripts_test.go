package consumer

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/script"
)

type (
	data = redistest.Data
	list = redistest.List
)

// server starts a redis-server for the test and detects its dialect.
func server(t *testing.T) (*redis.Client, script.Dialect) {
	t.Helper()
	rdb := redistest.Start(t).Client()
	d, err := script.Detect(context.Background(), rdb)
	if err != nil {
		t.Fatal(err)
	}
	if d.Legacy {
		t.Fatalf("redis-server 7 reported as legacy: %v", d)
	}
	return rdb, d
}

// TestScriptsLoad checks that every script of the package loads on a real
// server under the hash the code uses, in the #!lua form on Redis 7.
func TestScriptsLoad(t *testing.T) {
	rdb, d := server(t)
	ctx := context.Background()
	for name, s := range map[string]*script.Script{"handback": HandbackScript, "replay": ReplayScript, "promote": PromoteScript} {
		if err := s.Load(ctx, d, rdb); err != nil {
			t.Fatalf("%s.lua does not load: %v", name, err)
		}
		ok, err := rdb.ScriptExists(ctx, s.Hash(d)).Result()
		if err != nil || !ok[0] {
			t.Fatalf("%s.lua not known by its hash %s: %v %v", name, s.Hash(d), ok, err)
		}
	}
}

// TestHandbackScript runs handback.lua's branches: Redis before, call,
// Redis after. KEYS are "taken" and "q" (scoped per case).
func TestHandbackScript(t *testing.T) {
	rdb, d := server(t)
	tests := []struct {
		name   string
		before data
		args   []any
		want   []int64
		after  data // nil: same as before
	}{
		{name: "all: newest first to the consuming end, oldest rightmost",
			before: data{"taken": list{"c", "b", "a"}, "q": list{"x"}}, args: []any{"all", 10, 1000},
			want: []int64{1, 3, 0}, after: data{"q": list{"x", "c", "b", "a"}}},
		{name: "all: at most ARGV[2] entries",
			before: data{"taken": list{"c", "b", "a"}}, args: []any{"all", 2, 1000},
			want: []int64{1, 2, 1}, after: data{"taken": list{"a"}, "q": list{"c", "b"}}},
		{name: "all: stops once the byte budget is reached, one entry at least",
			before: data{"taken": list{"cc", "bb", "aa"}}, args: []any{"all", 10, 1},
			want: []int64{1, 1, 2}, after: data{"taken": list{"bb", "aa"}, "q": list{"cc"}}},
		{name: "all: an empty taken list moves nothing",
			before: data{"q": list{"x"}}, args: []any{"all", 10, 1000}, want: []int64{1, 0, 0}},
		{name: "these: the entries still there, the oldest rightmost; one gone is not moved",
			before: data{"taken": list{"c", "b", "a"}, "q": list{"x"}}, args: []any{"these", "a", "gone", "c"},
			want: []int64{1, 2, 1}, after: data{"taken": list{"b"}, "q": list{"x", "c", "a"}}},
		{name: "these: of two identical entries, one moves",
			before: data{"taken": list{"a", "a"}}, args: []any{"these", "a"},
			want: []int64{1, 1, 1}, after: data{"taken": list{"a"}, "q": list{"a"}}},
		{name: "taken list of another type: nothing moved",
			before: data{"taken": "s", "q": list{"x"}}, args: []any{"these", "s"}, want: []int64{2, 0, 0}},
		{name: "queue of another type: nothing moved",
			before: data{"taken": list{"a"}, "q": "s"}, args: []any{"all", 10, 1000}, want: []int64{3, 0, 0}},
		{name: "bad mode", before: data{"taken": list{"a"}}, args: []any{"some"}, want: []int64{4, 0, 0}},
		{name: "all without a count", before: data{"taken": list{"a"}}, args: []any{"all", "x", 10}, want: []int64{4, 0, 0}},
		{name: "all with a zero count", before: data{"taken": list{"a"}}, args: []any{"all", 0, 10}, want: []int64{4, 0, 0}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := fmt.Sprintf("c%d:", i)
			redistest.Load(t, rdb, redistest.Prefixed(p, tc.before))
			got, err := HandbackScript.Run(context.Background(), d, rdb, []string{p + "taken", p + "q"}, tc.args...).Int64Slice()
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("reply %v %v, want %v", got, err, tc.want)
			}
			want := tc.after
			if want == nil {
				want = tc.before
			}
			redistest.CheckAfter(t, rdb, p, want)
		})
	}
}

// TestHandBack: the Go side maps the codes to errors, and hands back a
// list past the byte budget in several calls, in order.
func TestHandBack(t *testing.T) {
	rdb, d := server(t)
	ctx := context.Background()
	big := strings.Repeat("x", ScriptBudget/2)
	entries := []string{"1" + big, "2" + big, "3" + big, "4" + big} // oldest first
	for _, e := range entries {
		rdb.LPush(ctx, "taken", e)
	}
	if err := HandbackScript.Load(ctx, d, rdb); err != nil { // no NOSCRIPT round in the counts
		t.Fatal(err)
	}
	rdb.ConfigResetStat(ctx)
	n, err := HandBack(ctx, rdb, d, "taken", "q", entries)
	if err != nil || n != 4 {
		t.Fatalf("HandBack = %d, %v", n, err)
	}
	info := rdb.Info(ctx, "commandstats").Val()
	if !strings.Contains(info, "cmdstat_evalsha:calls=2,") {
		t.Errorf("8 MiB handed back not in two calls:\n%s", info)
	}
	if got := rdb.LRange(ctx, "q", 0, -1).Val(); !reflect.DeepEqual(got, []string{entries[3], entries[2], entries[1], entries[0]}) {
		t.Error("handed back out of order")
	}
	rdb.Set(ctx, "s", "x", 0)
	var te *script.TypeError
	if _, err := HandBack(ctx, rdb, d, "taken", "s", []string{"a"}); !errors.As(err, &te) || te.Key != "s" || !errors.Is(err, ErrQueueType) {
		t.Errorf("queue of another type: %v", err)
	}
	if _, _, err := HandBackAll(ctx, rdb, d, "s", "q"); !errors.As(err, &te) || te.Key != "s" || !errors.Is(err, ErrTakenType) {
		t.Errorf("taken list of another type: %v", err)
	}
	if moved, left, err := HandBackAll(ctx, rdb, d, "taken", "q"); err != nil || moved != 0 || left != 0 {
		t.Errorf("HandBackAll of an empty list: %d %d %v", moved, left, err)
	}
}

// TestReplayScriptBadArgument: replay.lua refuses a batch size that is not
// a number with its last code, 6 (the one after its wrong-type keys),
// writing nothing.
func TestReplayScriptBadArgument(t *testing.T) {
	rdb, d := server(t)
	ctx := context.Background()
	if err := rdb.RPush(ctx, "taken", "e").Err(); err != nil {
		t.Fatal(err)
	}
	got, err := ReplayScript.Run(ctx, d, rdb, []string{"taken", "q", "sched", "q/dead"},
		"many", 1, 3, 1000, 30000, "r1", "q", "2026-01-01T00:00:00Z", ScriptBudget).Int64Slice()
	if err != nil || !reflect.DeepEqual(got, []int64{6, 0, 0, 0, 0}) {
		t.Fatalf("%v, %v; want [6 0 0 0 0]", got, err)
	}
	if n := rdb.LLen(ctx, "taken").Val(); n != 1 || rdb.Exists(ctx, "q", "sched", "q/dead").Val() != 0 {
		t.Errorf("a refusal wrote: taken has %d entries", n)
	}
}
