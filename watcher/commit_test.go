package watcher

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/rules"
)

// TestScriptsLoad checks that every script loads on a real server under the
// hash the code uses, in the #!lua form on Redis 7.
func TestScriptsLoad(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	d, err := script.Detect(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if d.Legacy {
		t.Fatalf("redis-server 7 reported as legacy: %v", d)
	}
	for name, s := range map[string]*script.Script{"commit": commitScript, "take": takeScript, "handback": handbackScript} {
		if err := s.Load(ctx, d, rdb); err != nil {
			t.Fatalf("%s.lua does not load: %v", name, err)
		}
		ok, err := rdb.ScriptExists(ctx, s.Hash(d)).Result()
		if err != nil || !ok[0] {
			t.Fatalf("%s.lua not known by its hash %s: %v %v", name, s.Hash(d), ok, err)
		}
	}
}

// TestCommitScript runs commit.lua's every branch: Redis before, call,
// Redis after.
func TestCommitScript(t *testing.T) {
	t.Parallel()
	type kv = map[string][]string // list contents, head first
	tests := []struct {
		name   string
		before func(ctx context.Context, c *redis.Client)
		item   item
		code   int64
		pushed int64
		dedup  int64
		reason string
		lists  kv // after
		zsets  kv // members after
		dead   int
	}{
		{
			name:   "owned, no set: pushed",
			before: func(ctx context.Context, c *redis.Client) { c.LPush(ctx, "in/taken/r1", "ev") },
			item:   item{event: "ev", tasks: []rules.Task{{Task: "t1", Queue: "q1"}, {Task: "t2", Queue: "q2"}}},
			code:   codeCommitted, pushed: 2,
			lists: kv{"in/taken/r1": nil, "q1": {"t1"}, "q2": {"t2"}},
		},
		{
			name:   "not owned: nothing written",
			before: func(ctx context.Context, c *redis.Client) { c.LPush(ctx, "in/taken/r1", "other") },
			item:   item{event: "ev", tasks: []rules.Task{{Task: "t1", Queue: "q1", Set: "s1", HasSet: true}}},
			code:   codeNotOwned,
			lists:  kv{"in/taken/r1": {"other"}, "q1": nil},
			zsets:  kv{"s1": nil},
		},
		{
			name:   "set miss: added to set and pushed",
			before: func(ctx context.Context, c *redis.Client) { c.LPush(ctx, "in/taken/r1", "ev") },
			item:   item{event: "ev", tasks: []rules.Task{{Task: "t1", Queue: "q1", Set: "s1", HasSet: true}}},
			code:   codeCommitted, pushed: 1,
			lists: kv{"in/taken/r1": nil, "q1": {"t1"}},
			zsets: kv{"s1": {"t1"}},
		},
		{
			name: "set hit: not pushed again",
			before: func(ctx context.Context, c *redis.Client) {
				c.LPush(ctx, "in/taken/r1", "ev")
				c.ZAdd(ctx, "s1", redis.Z{Score: 1, Member: "t1"})
			},
			item: item{event: "ev", tasks: []rules.Task{{Task: "t1", Queue: "q1", Set: "s1", HasSet: true}, {Task: "t2", Queue: "q1", Set: "s1", HasSet: true}}},
			code: codeCommitted, pushed: 1, dedup: 1,
			lists: kv{"in/taken/r1": nil, "q1": {"t2"}},
			zsets: kv{"s1": {"t1", "t2"}},
		},
		{
			name: "only the last copy of a duplicated event is removed",
			before: func(ctx context.Context, c *redis.Client) {
				c.LPush(ctx, "in/taken/r1", "ev", "x", "ev")
			},
			item: item{event: "ev", tasks: []rules.Task{{Task: "t1", Queue: "q1"}}},
			code: codeCommitted, pushed: 1,
			lists: kv{"in/taken/r1": {"ev", "x"}, "q1": {"t1"}},
		},
		{
			name: "queue of the wrong type: nothing written",
			before: func(ctx context.Context, c *redis.Client) {
				c.LPush(ctx, "in/taken/r1", "ev")
				c.HSet(ctx, "q2", "f", "v")
			},
			item:   item{event: "ev", tasks: []rules.Task{{Task: "t1", Queue: "q1"}, {Task: "t2", Queue: "q2"}}},
			code:   codeBadDestination,
			reason: "queue q2 is a hash, not a list",
			lists:  kv{"in/taken/r1": {"ev"}, "q1": nil},
		},
		{
			name: "set of the wrong type: nothing written",
			before: func(ctx context.Context, c *redis.Client) {
				c.LPush(ctx, "in/taken/r1", "ev")
				c.Set(ctx, "s1", "x", 0)
			},
			item:   item{event: "ev", tasks: []rules.Task{{Task: "t1", Queue: "q1", Set: "s1", HasSet: true}}},
			code:   codeBadDestination,
			reason: "set s1 is a string, not a sorted set",
			lists:  kv{"in/taken/r1": {"ev"}, "q1": nil},
		},
		{
			name:   "one key as queue and set of one task: nothing written",
			before: func(ctx context.Context, c *redis.Client) { c.LPush(ctx, "in/taken/r1", "ev") },
			item:   item{event: "ev", tasks: []rules.Task{{Task: "t1", Queue: "same", Set: "same", HasSet: true}}},
			code:   codeBadDestination,
			reason: "key same is both a queue and a set of this event's tasks",
			lists:  kv{"in/taken/r1": {"ev"}, "same": nil},
		},
		{
			name:   "one key as a set, then as a queue: nothing written",
			before: func(ctx context.Context, c *redis.Client) { c.LPush(ctx, "in/taken/r1", "ev") },
			item:   item{event: "ev", tasks: []rules.Task{{Task: "t1", Queue: "q1", Set: "k", HasSet: true}, {Task: "t2", Queue: "k"}}},
			code:   codeBadDestination,
			reason: "key k is both a queue and a set of this event's tasks",
			lists:  kv{"in/taken/r1": {"ev"}, "q1": nil},
			zsets:  kv{"k": nil},
		},
		{
			name:   "dead-letter: moved with its entry",
			before: func(ctx context.Context, c *redis.Client) { c.LPush(ctx, "in/taken/r1", "ev") },
			item:   item{event: "ev", outcome: outcomeDead, reason: "because"},
			code:   codeDeadLettered,
			lists:  kv{"in/taken/r1": nil},
			dead:   1,
		},
		{
			name:   "dead-letter not owned: nothing written",
			before: func(ctx context.Context, c *redis.Client) {},
			item:   item{event: "ev", outcome: outcomeDead, reason: "because"},
			code:   codeNotOwned,
			dead:   0,
		},
		{
			name: "dead-letter list of the wrong type: nothing written",
			before: func(ctx context.Context, c *redis.Client) {
				c.LPush(ctx, "in/taken/r1", "ev")
				c.Set(ctx, "in/dead", "x", 0)
			},
			item:  item{event: "ev", outcome: outcomeDead, reason: "because"},
			code:  codeBadDeadList,
			lists: kv{"in/taken/r1": {"ev"}},
			dead:  -1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, nil, nil)
			ctx := context.Background()
			tc.before(ctx, h.rdb)
			it := tc.item
			reply, err := h.commitOne(ctx, &it)
			if err != nil {
				t.Fatal(err)
			}
			if got := reply[0].(int64); got != tc.code {
				t.Fatalf("code %d, want %d (reply %v)", got, tc.code, reply)
			}
			if reply[1].(int64) != tc.pushed || reply[2].(int64) != tc.dedup {
				t.Errorf("pushed, deduplicated = %v, %v; want %d, %d", reply[1], reply[2], tc.pushed, tc.dedup)
			}
			if tc.reason != "" && (len(reply) < 4 || reply[3] != tc.reason) {
				t.Errorf("reply %v, want reason %q", reply, tc.reason)
			}
			for k, want := range tc.lists {
				if got := h.list(k); !equal(got, want) {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			for k, want := range tc.zsets {
				got, _ := h.rdb.ZRange(ctx, k, 0, -1).Result()
				if !equal(got, want) {
					t.Errorf("zset %s = %q, want %q", k, got, want)
				}
				for _, m := range want {
					score, _ := h.rdb.ZScore(ctx, k, m).Result()
					if m != "t1" || tc.code != codeCommitted || tc.dedup > 0 {
						continue
					}
					if int64(score) != fixedNow.Unix() {
						t.Errorf("score of %s = %v, want the injected now %d", m, score, fixedNow.Unix())
					}
				}
			}
			if tc.dead >= 0 {
				dead := h.list("in/dead")
				if len(dead) != tc.dead {
					t.Fatalf("dead list %q, want %d entries", dead, tc.dead)
				}
				if tc.dead == 1 {
					e, err := deadletter.Decode(dead[0])
					if err != nil {
						t.Fatal(err)
					}
					want := deadletter.Entry{Event: "ev", Queue: "in", Reason: "because", Replica: "r1", Time: "2026-11-23T12:00:00Z"}
					if *e != want {
						t.Errorf("dead entry %+v, want %+v", e, want)
					}
				}
			}
		})
	}
}

// TestCommitListenerMessages checks resc's exact listener text: one TRIGGER
// per task pushed (none for a deduplicated one), then DONE.
func TestCommitListenerMessages(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, func(_ *config.Watcher, o *Options) { o.ListenerChannel = "events" })
	ctx := context.Background()
	sub := h.rdb.Subscribe(ctx, "events")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	h.rdb.LPush(ctx, "in/taken/r1", "acq/1/2")
	h.rdb.ZAdd(ctx, "s", redis.Z{Score: 1, Member: "old"})
	it := item{event: "acq/1/2", tasks: []rules.Task{
		{Task: "trt/1/2", Queue: "q", Set: "s", HasSet: true},
		{Task: "old", Queue: "q", Set: "s", HasSet: true},
		{Task: "x", Queue: "q2"},
	}}
	if _, err := h.commitOne(ctx, &it); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"in/taken TRIGGER acq/1/2 -> trt/1/2",
		"in/taken TRIGGER acq/1/2 -> x",
		"in/taken DONE acq/1/2",
	}
	for i, w := range want {
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Payload != w {
			t.Fatalf("message %d = %q, want %q", i, msg.Payload, w)
		}
	}
}

// TestCommitListenerStream checks the durable listener messages: the same
// TRIGGERs and DONE as the channel, appended to the stream by the commit,
// each with its fields, in commit order across events of one call.
func TestCommitListenerStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, func(_ *config.Watcher, o *Options) {
		o.ListenerStream, o.ListenerStreamMaxLen = "events/log", 1000
	})
	ctx := context.Background()
	h.rdb.LPush(ctx, "in/taken/r1", "acq/1/2", "acq/3/4")
	h.rdb.ZAdd(ctx, "s", redis.Z{Score: 1, Member: "old"})
	a := item{event: "acq/1/2", tasks: []rules.Task{
		{Task: "trt/1/2", Queue: "q", Set: "s", HasSet: true},
		{Task: "old", Queue: "q", Set: "s", HasSet: true},
		{Task: "x", Queue: "q2"},
	}}
	b := item{event: "acq/3/4", tasks: []rules.Task{{Task: "trt/3/4", Queue: "q"}}}
	if _, err := h.runCommit(ctx, &a, &b); err != nil {
		t.Fatal(err)
	}
	entries, err := h.rdb.XRange(ctx, "events/log", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	trigger := func(e, task string) map[string]any {
		return map[string]any{"type": "TRIGGER", "queue": "in/taken", "event": e, "task": task}
	}
	done := func(e string) map[string]any {
		return map[string]any{"type": "DONE", "queue": "in/taken", "event": e}
	}
	want := []map[string]any{
		trigger("acq/1/2", "trt/1/2"), trigger("acq/1/2", "x"), done("acq/1/2"),
		trigger("acq/3/4", "trt/3/4"), done("acq/3/4"),
	}
	if len(entries) != len(want) {
		t.Fatalf("stream has %d entries %v, want %d", len(entries), entries, len(want))
	}
	for i, e := range entries {
		if !reflect.DeepEqual(e.Values, want[i]) {
			t.Errorf("entry %d = %v, want %v", i, e.Values, want[i])
		}
	}
}

// TestCommitListenerStreamTrimmed checks that the stream stays near its
// MAXLEN (trimmed with ~, so whole macro nodes of 100 entries go at once).
func TestCommitListenerStreamTrimmed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil, func(_ *config.Watcher, o *Options) {
		o.ListenerStream, o.ListenerStreamMaxLen = "events/log", 10
	})
	ctx := context.Background()
	const n = 600
	for i := range n {
		e := fmt.Sprintf("e%d", i)
		h.rdb.LPush(ctx, "in/taken/r1", e)
		if _, err := h.commitOne(ctx, &item{event: e, tasks: []rules.Task{{Task: e, Queue: "q"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.rdb.LLen(ctx, "q").Val(); got != n {
		t.Fatalf("q has %d tasks, want %d", got, n)
	}
	if l := h.rdb.XLen(ctx, "events/log").Val(); l < 10 || l > 10+200 {
		t.Fatalf("stream length %d after %d entries, want about its MAXLEN 10 (at most two macro nodes more)", l, 2*n)
	}
}

// TestListenerStreamBadKey checks that a listener stream key of the wrong
// type, or one that is also a task's queue, dead-letters the event with the
// reason and writes none of its tasks.
func TestListenerStreamBadKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, queue string
		setup       func(*redis.Client)
		reason      string
	}{
		{"stream key is a list", "q", func(r *redis.Client) { r.LPush(context.Background(), "events/log", "x") },
			"listener stream events/log is a list, not a stream"},
		{"stream key is the task queue", "events/log", func(*redis.Client) {},
			"key events/log is both the listener stream and a queue of this event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, []config.Rule{rule("r", "^a$", mk("t", tc.queue, ""))}, nil,
				func(_ *config.Watcher, o *Options) { o.ListenerStream = "events/log" })
			tc.setup(h.rdb)
			h.start()
			h.push("a")
			h.waitHandled(1)
			if e := h.onlyDead(); e.Event != "a" || !strings.Contains(e.Reason, tc.reason) {
				t.Fatalf("dead entry %+v, want event a with reason containing %q", e, tc.reason)
			}
			if q := h.list("q"); len(q) != 0 {
				t.Fatalf("q = %q, want no task", q)
			}
		})
	}
}

// TestCommitStampedEntry: an entry replayed after a crash carries its
// count ("\0resc:replays=n\0event"). Its commit fences on the entry and
// tells the bare event (listener message, stream, fetch attempts); a fetch
// retry keeps the stamp in the delay schedule, so the count stays with the
// occurrence; a dead-letter entry holds the bare event.
func TestCommitStampedEntry(t *testing.T) {
	t.Parallel()
	entry := keyspace.StampReplays(2, "ev")
	h := newHarness(t, nil, nil, func(_ *config.Watcher, o *Options) { o.ListenerStream = "events/log" })
	ctx := context.Background()
	h.rdb.LPush(ctx, "in/taken/r1", entry, entry, entry)
	h.rdb.HSet(ctx, h.w.attempts, sha1hex("ev"), "1 "+strconv.FormatInt(fixedNow.UnixMilli(), 10))

	commit := item{event: "ev", entry: entry, fetched: true, tasks: []rules.Task{{Task: "t", Queue: "q"}}}
	if r, err := h.commitOne(ctx, &commit); err != nil || r[0] != int64(1) {
		t.Fatalf("commit: %v %v, want code 1", r, err)
	}
	if n := h.rdb.HLen(ctx, h.w.attempts).Val(); n != 0 {
		t.Errorf("the bare event's fetch attempts not forgotten: %d fields", n)
	}
	log, _ := h.rdb.XRange(ctx, "events/log", "-", "+").Result()
	if len(log) != 2 || log[0].Values["event"] != "ev" || log[1].Values["event"] != "ev" {
		t.Errorf("stream entries %v, want TRIGGER and DONE of the bare event", log)
	}

	retry := item{event: "ev", entry: entry, fetched: true, outcome: outcomeRetry, reason: "503", seq: 7}
	if r, err := h.commitOne(ctx, &retry); err != nil || r[0] != int64(7) {
		t.Fatalf("retry: %v %v, want code 7", r, err)
	}
	members := h.rdb.ZRange(ctx, keyspace.DelaySchedule("resc:", "in"), 0, -1).Val()
	if len(members) != 1 || !strings.HasSuffix(members[0], ":"+entry) {
		t.Errorf("delay schedule %q, want one member ending with the stamped entry", members)
	}

	dead := item{event: "ev", entry: entry, outcome: outcomeDead, reason: "because"}
	if r, err := h.commitOne(ctx, &dead); err != nil || r[0] != int64(4) {
		t.Fatalf("dead: %v %v, want code 4", r, err)
	}
	if e := h.onlyDead(); e.Event != "ev" {
		t.Errorf("dead-letter entry of event %q, want the bare ev", e.Event)
	}
	if l := h.list("in/taken/r1"); len(l) != 0 {
		t.Errorf("taken list %q after three fenced commits, want empty", l)
	}
}
