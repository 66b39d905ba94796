package recovery

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/script"

	"github.com/resc-go/resc/internal/keyspace"
)

// TestReplayScript runs replay.lua's branches: Redis before, call, Redis
// after. The call replays "in/taken/r1" of input queue "in" at t0;
// MaxReplays 3, delays 1 s doubling up to 30 s. An entry's count is the
// stamp it carries (st).
func TestReplayScript(t *testing.T) {
	t.Parallel()
	const (
		taken = "in/taken/r1"
		sched = "p:delayed:in"
	)
	now := ms(0)
	st := keyspace.StampReplays
	bad := "\xffq\"\x00/\xe2\x82"
	tests := []struct {
		name   string
		set    func(*Settings)
		before db
		want   replayStats
		left   int64
		err    error
		after  db // nil: same as before
	}{
		{
			name:   "first replay: to the consuming end, oldest rightmost, stamped 1",
			before: db{taken: list{"c", "b", "a"}, "in": list{"x"}},
			want:   replayStats{Replayed: 3},
			after:  db{"in": list{"x", st(1, "c"), st(1, "b"), st(1, "a")}},
		},
		{
			name:   "second replay: delayed by ReplayDelay, stamped 2",
			before: db{taken: list{st(1, "e")}},
			want:   replayStats{Delayed: 1},
			after:  db{sched: zset{fmt.Sprint(now, "-1:", st(2, "e")): at(time.Second)}},
		},
		{
			name:   "third replay: delay doubled",
			before: db{taken: list{st(2, "e")}},
			want:   replayStats{Delayed: 1},
			after:  db{sched: zset{fmt.Sprint(now, "-1:", st(3, "e")): at(2 * time.Second)}},
		},
		{
			name:   "delay capped at MaxReplayDelay",
			set:    func(s *Settings) { s.MaxReplays = 20 },
			before: db{taken: list{st(9, "e")}},
			want:   replayStats{Delayed: 1},
			after:  db{sched: zset{fmt.Sprint(now, "-1:", st(10, "e")): at(30 * time.Second)}},
		},
		{
			name:   "past MaxReplays: dead-lettered bare",
			before: db{taken: list{st(3, "e"), "f"}, "in/dead": list{"older"}},
			want:   replayStats{Replayed: 1, Dead: 1},
			after:  db{"in": list{st(1, "f")}, "in/dead": list{deadJSON("e", "in", "r1", 3, t0), "older"}},
		},
		{
			name:   "dead-lettered event not UTF-8: replaced as Go does, exact bytes in base64",
			before: db{taken: list{st(3, bad)}},
			want:   replayStats{Dead: 1},
			after:  db{"in/dead": list{deadJSON(bad, "in", "r1", 3, t0)}},
		},
		{
			name:   "MaxReplays zero, as max_replays 0 in the configuration: dead-lettered at once",
			set:    func(s *Settings) { s.MaxReplays = 0 },
			before: db{taken: list{"e"}},
			want:   replayStats{Dead: 1},
			after:  db{"in/dead": list{deadJSON("e", "in", "r1", 0, t0)}},
		},
		{
			name:   "MaxReplays negative: taken as zero",
			set:    func(s *Settings) { s.MaxReplays = -1 },
			before: db{taken: list{"e"}},
			want:   replayStats{Dead: 1},
			after:  db{"in/dead": list{deadJSON("e", "in", "r1", 0, t0)}},
		},
		{
			name:   "identical events count apart: each occurrence its own crashes",
			before: db{taken: list{"e", st(3, "e"), st(1, "e"), "e"}},
			want:   replayStats{Replayed: 2, Delayed: 1, Dead: 1},
			after: db{"in": list{st(1, "e"), st(1, "e")}, "in/dead": list{deadJSON("e", "in", "r1", 3, t0)},
				sched: zset{fmt.Sprint(now, "-1:", st(2, "e")): at(time.Second)}},
		},
		{
			name:   "an event that only looks stamped counts 0 and keeps its bytes",
			before: db{taken: list{"\x00resc:replays=x\x00e"}},
			want:   replayStats{Replayed: 1},
			after:  db{"in": list{st(1, "\x00resc:replays=x\x00e")}},
		},
		{
			name: "identical delayed events stay distinct, also beside another leader's member",
			before: db{taken: list{st(1, "e"), st(1, "e")},
				sched: zset{fmt.Sprint(now, "-1:", st(2, "e")): at(time.Second)}},
			want: replayStats{Delayed: 2},
			after: db{sched: zset{
				fmt.Sprint(now, "-1:", st(2, "e")): at(time.Second), fmt.Sprint(now, "-2:", st(2, "e")): at(time.Second),
				fmt.Sprint(now, "-3:", st(2, "e")): at(time.Second)}},
		},
		{
			name:   "batch: the newest BatchSize entries, the rest left",
			set:    func(s *Settings) { s.BatchSize = 2 },
			before: db{taken: list{"d", "c", "b", "a"}},
			want:   replayStats{Replayed: 2},
			left:   2,
			after:  db{taken: list{"b", "a"}, "in": list{st(1, "d"), st(1, "c")}},
		},
		{
			name:   "no taken list: nothing to do",
			before: db{"in": list{"x"}},
		},
		{
			name:   "taken list not a list",
			before: db{taken: "s"},
			err:    ErrTakenType,
		},
		{
			name:   "input queue not a list",
			before: db{taken: list{"e"}, "in": "s"},
			err:    ErrInputType,
		},
		{
			name:   "delay schedule not a sorted set",
			before: db{taken: list{"e"}, sched: list{"x"}},
			err:    ErrScheduleType,
		},
		{
			name:   "dead-letter list not a list",
			before: db{taken: list{"e"}, "in/dead": hash{"a": "b"}},
			err:    ErrDeadType,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Settings{MaxReplays: 3, ReplayDelay: time.Second, MaxReplayDelay: 30 * time.Second, BatchSize: 10}
			if tt.set != nil {
				tt.set(&s)
			}
			e := newEnv(t, s, nil, nil)
			e.load(tt.before)
			got, left, err := e.r.replayBatch(context.Background(), e.r.watched[0], taken, "r1", t0)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			var te *TypeError
			if tt.err != nil && !errors.As(err, &te) {
				t.Fatalf("error %v is not a *TypeError", err)
			}
			if got != tt.want || left != tt.left {
				t.Errorf("stats %+v left %d, want %+v left %d", got, left, tt.want, tt.left)
			}
			want := tt.after
			if want == nil {
				want = tt.before
			}
			if after := e.dump(); !reflect.DeepEqual(after, want) {
				t.Errorf("Redis after:\n got %#v\nwant %#v", after, want)
			}
		})
	}
}

// TestDeadEntryNotUTF8 decodes a dead-letter entry of an event that is not
// UTF-8 as a consumer would: event as Go's JSON would write it, exact bytes
// in event_base64.
func TestDeadEntryNotUTF8(t *testing.T) {
	t.Parallel()
	events := []string{"\xff", "a\xe2\x82", "\xed\xa0\x80x", "\xf4\x90\x80\x80", "\xc0\xaf", "ok é ✓ 𝄞", "\x00\"\\/\n\t"}
	e := newEnv(t, Settings{MaxReplays: -1}, nil, nil)
	ctx := context.Background()
	for _, ev := range events {
		e.rdb.LPush(ctx, "in/taken/r1", ev)
		if _, _, err := e.r.replayBatch(ctx, e.r.watched[0], "in/taken/r1", "r1", t0); err != nil {
			t.Fatal(err)
		}
		raw := e.rdb.LIndex(ctx, "in/dead", 0).Val()
		if !utf8.ValidString(raw) {
			t.Fatalf("entry of %q is not UTF-8: %q", ev, raw)
		}
		got, err := deadletter.Decode(raw) // strictly: replay.lua writes what the format has
		if err != nil {
			t.Fatal(err)
		}
		goJSON, _ := json.Marshal(ev)
		var want string
		_ = json.Unmarshal(goJSON, &want)
		if got.Event != want {
			t.Errorf("event %q written as %q, want %q", ev, got.Event, want)
		}
		if utf8.ValidString(ev) != (got.EventBase64 == "") {
			t.Errorf("event %q: event_base64 %q", ev, got.EventBase64)
		}
		if got.EventBase64 != "" {
			if b, err := base64.StdEncoding.DecodeString(got.EventBase64); err != nil || string(b) != ev {
				t.Errorf("event %q: event_base64 %q decodes to %q, %v", ev, got.EventBase64, b, err)
			}
		}
		if got.Queue != "in" || got.Replica != "r1" || got.Time != "2026-11-23T12:00:00Z" || got.Count == nil || *got.Count != 0 || got.Reason == "" {
			t.Errorf("entry %+v", got)
		}
	}
}

// TestPromoteScript runs promote.lua's branches: Redis before, call at t0,
// Redis after.
func TestPromoteScript(t *testing.T) {
	t.Parallel()
	const sched = "p:delayed:in"
	tests := []struct {
		name   string
		batch  int
		before db
		want   int
		err    error
		after  db // nil: same as before
	}{
		{
			name:   "due events to the consuming end, earliest rightmost; others kept",
			before: db{"in": list{"x"}, sched: zset{"1-1:early": at(-2 * time.Second), "1-2:now": at(0), "1-1:late": at(-time.Second), "1-1:future": at(time.Millisecond)}},
			want:   3,
			after:  db{"in": list{"x", "now", "late", "early"}, sched: zset{"1-1:future": at(time.Millisecond)}},
		},
		{
			name:   "batch: the latest due first, earlier ones next call",
			batch:  2,
			before: db{sched: zset{"1-1:e1": at(-3 * time.Second), "1-1:e2": at(-2 * time.Second), "1-1:e3": at(-time.Second)}},
			want:   2,
			after:  db{"in": list{"e3", "e2"}, sched: zset{"1-1:e1": at(-3 * time.Second)}},
		},
		{
			name:   "event text keeps its colons; a member without one is pushed whole",
			before: db{sched: zset{"1-1:a:b:": at(-2 * time.Second), "foreign": at(-time.Second)}},
			want:   2,
			after:  db{"in": list{"foreign", "a:b:"}},
		},
		{
			name:   "no schedule",
			before: db{"in": list{"x"}},
		},
		{
			name:   "schedule not a sorted set",
			before: db{sched: list{"1-1:e"}},
			err:    ErrScheduleType,
		},
		{
			name:   "input queue not a list",
			before: db{sched: zset{"1-1:e": at(-time.Second)}, "in": "s"},
			err:    ErrInputType,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Settings{BatchSize: tt.batch, MaxReplays: DefaultMaxReplays}, nil, nil)
			e.load(tt.before)
			got, err := e.r.promote(context.Background(), sched, "in", ms(0))
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("promoted %d, want %d", got, tt.want)
			}
			want := tt.after
			if want == nil {
				want = tt.before
			}
			if after := e.dump(); !reflect.DeepEqual(after, want) {
				t.Errorf("Redis after:\n got %#v\nwant %#v", after, want)
			}
		})
	}
}

// TestReplayTwoLeaders runs replay.lua from two leaders at once on the
// same orphan list, many times: every entry ends in exactly one place.
func TestReplayTwoLeaders(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	const rounds, entries = 30, 300
	for round := range rounds {
		input := "in" + strconv.Itoa(round)
		w := Watched{InputQueue: input, TakenQueue: input + "/taken"}
		taken := w.TakenQueue + "/r1"
		seed := srv.Client()
		var want []string
		for i := range entries {
			ev := "e" + strconv.Itoa(i)
			entry := ev
			switch i % 5 {
			case 0:
				ev, entry = "dup", "dup" // identical events
			case 1:
				ev = "delayed" + strconv.Itoa(i) // replayed before: delayed
				entry = keyspace.StampReplays(1, ev)
			case 2:
				ev = "dead" + strconv.Itoa(i) // replayed to the max: dead-lettered
				entry = keyspace.StampReplays(3, ev)
			}
			want = append(want, ev)
			seed.LPush(ctx, taken, entry)
		}
		var (
			wg    sync.WaitGroup
			total [2]replayStats
			errs  [2]error
		)
		for l := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, _ := script.Detect(ctx, seed)
				// Each leader has its own connection and batch size, and
				// both use the same clock: identical delayed events must
				// still stay distinct.
				r := New(srv.Client(), []Watched{w}, newFakeLive(), Options{Settings: Settings{Prefix: "p:", BatchSize: 3 + 4*l, MaxReplays: DefaultMaxReplays, Now: func() time.Time { return t0 }}, Dialect: d})
				for {
					st, left, err := r.replayBatch(ctx, w, taken, "r1", t0)
					if err != nil {
						errs[l] = err
						return
					}
					total[l].Replayed += st.Replayed
					total[l].Delayed += st.Delayed
					total[l].Dead += st.Dead
					if left == 0 {
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs[:]...); err != nil {
			t.Fatal(err)
		}
		if n := total[0].Total() + total[1].Total(); n != entries {
			t.Fatalf("round %d: %d entries moved, want %d (%+v)", round, n, entries, total)
		}
		var got []string
		for _, e := range seed.LRange(ctx, input, 0, -1).Val() {
			ev, n := keyspace.Unstamp(e)
			if n != 1 {
				t.Fatalf("round %d: %q replayed with count %d, want 1", round, e, n)
			}
			got = append(got, ev)
		}
		for _, m := range seed.ZRange(ctx, keyspace.DelaySchedule("p:", input), 0, -1).Val() {
			_, e, _ := cutColon(m)
			ev, n := keyspace.Unstamp(e)
			if n != 2 {
				t.Fatalf("round %d: %q delayed with count %d, want 2", round, e, n)
			}
			got = append(got, ev)
		}
		for _, raw := range seed.LRange(ctx, input+"/dead", 0, -1).Val() {
			var d struct{ Event string }
			if err := json.Unmarshal([]byte(raw), &d); err != nil {
				t.Fatal(err)
			}
			got = append(got, d.Event)
		}
		if !reflect.DeepEqual(sorted(got), sorted(want)) {
			t.Fatalf("round %d: entries after the race differ from before: %d vs %d", round, len(got), len(want))
		}
		if n := seed.Exists(ctx, taken).Val(); n != 0 {
			t.Fatalf("round %d: taken list still exists", round)
		}
		if total[0].Total() == 0 || total[1].Total() == 0 {
			t.Logf("round %d: one leader moved nothing (%+v)", round, total)
		}
	}
}

func cutColon(m string) (string, string, bool) {
	for i := range len(m) {
		if m[i] == ':' {
			return m[:i], m[i+1:], true
		}
	}
	return "", m, false
}

// TestScriptsByteBudget: replay.lua and promote.lua stop once a call has
// moved scriptBudget bytes, leaving the rest to the next call, in order.
func TestScriptsByteBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Settings{MaxReplays: 3, ReplayDelay: time.Second, MaxReplayDelay: 30 * time.Second, BatchSize: 1000}, nil, nil)
	ctx := context.Background()
	const n, size = 6, 1 << 20 // 4 MiB is reached by the 4th
	var taken list
	for i := range n {
		taken = append(taken, fmt.Sprintf("%d%s", i, strings.Repeat("x", size))) // head first: 0 is the newest
	}
	e.load(db{"in/taken/r1": taken})
	st, left, err := e.r.replayBatch(ctx, e.r.watched[0], "in/taken/r1", "r1", t0)
	if err != nil || st.Replayed != 4 || left != 2 {
		t.Fatalf("first call: %+v, %d left, %v; want 4 replayed, 2 left", st, left, err)
	}
	if st, left, err = e.r.replayBatch(ctx, e.r.watched[0], "in/taken/r1", "r1", t0); err != nil || st.Replayed != 2 || left != 0 {
		t.Fatalf("second call: %+v, %d left, %v; want 2 replayed, none left", st, left, err)
	}
	in := e.list("in")
	for i, entry := range in {
		if ev, _ := keyspace.Unstamp(entry); ev != taken[i] {
			t.Fatalf("input queue entry %d is event %.1s, want %.1s: order lost across calls", i, ev, taken[i])
		}
	}

	sched := keyspace.DelaySchedule("p:", "in")
	for i := range n {
		e.rdb.ZAdd(ctx, sched, redis.Z{Score: at(time.Duration(i-n) * time.Millisecond), Member: fmt.Sprintf("t-%d:%s", i, taken[i])})
	}
	e.rdb.Del(ctx, "in")
	if got, err := e.r.promote(ctx, sched, "in", ms(0)); err != nil || got != 4 {
		t.Fatalf("first promote: %d, %v; want 4", got, err)
	}
	if got, err := e.r.Promote(ctx); err != nil || got != 2 {
		t.Fatalf("Promote: %d, %v; want the 2 left", got, err)
	}
	if got := e.list("in"); len(got) != n || got[n-1] != taken[0] {
		t.Errorf("promoted %d events, the earliest due at the consuming end: %v", len(got), got[n-1] == taken[0])
	}
}
