package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/membership"
	"github.com/resc-go/resc/recovery"
)

// Entries of the dead tests, oldest first: one as package watcher writes
// it, two as package recovery's script does (cjson: '/' escaped, count; a
// binary event with event_base64), and one pushed by hand.
var (
	entAcq    = watcherEntry("acq/1", `rule "enrich": fetch GET http://svc/p/1: status 404`)
	entBin    = `{"count":0,"event":"bin\/\ufffd\ufffd","event_base64":"YmluL//+","queue":"in","reason":"replayed 0 times: it may crash replicas (poison event)","replica":"gone","time":"2026-11-23T11:00:00Z"}`
	entPoison = `{"count":3,"event":"poison\/7","queue":"in","reason":"replayed 3 times: it may crash replicas (poison event)","replica":"r2","time":"2026-11-23T11:00:05Z"}`
	entRaw    = "pushed\tby hand"
)

const (
	binEvent = "bin/\xff\xfe"
	counts   = "t:replays:in" // the replay counts of "in" an earlier version kept, under opsConfig's prefix
)

func watcherEntry(event, reason string) string {
	return deadletter.Entry{Event: event, Queue: "in", Reason: reason, Replica: "r1", Time: "2026-11-23T10:58:47Z"}.JSON()
}

func sha(event string) string {
	h := sha1.Sum([]byte(event))
	return hex.EncodeToString(h[:])
}

// deadState is what the dead tests look at: the input queue "in" (head
// first), its dead-letter list (oldest first, as `resc dead list` numbers
// it), the replay counts of "in", and the names of every key.
type deadState struct {
	in, dead []string
	counts   map[string]string
	keys     []string
}

// loadDead writes s (its keys field aside) to Redis.
func loadDead(t *testing.T, rdb *redis.Client, s deadState) {
	t.Helper()
	dead := slices.Clone(s.dead)
	slices.Reverse(dead) // head first
	rpush(t, rdb, map[string][]string{"in": s.in, "in/dead": dead})
	if len(s.counts) > 0 {
		if err := rdb.HSet(t.Context(), counts, s.counts).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func readDead(t *testing.T, rdb *redis.Client) deadState {
	t.Helper()
	s := deadState{in: list(t, rdb, "in"), dead: list(t, rdb, "in/dead"), counts: map[string]string{}}
	slices.Reverse(s.dead)
	var err error
	if s.counts, err = rdb.HGetAll(t.Context(), counts).Result(); err != nil {
		t.Fatal(err)
	}
	if s.keys, err = rdb.Keys(t.Context(), "*").Result(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(s.keys)
	return s
}

// withKeys returns s with the keys it describes, and empty rather than
// nil collections, as readDead reads them.
func (s deadState) withKeys() deadState {
	s.keys = nil
	for k, v := range map[string]int{"in": len(s.in), "in/dead": len(s.dead), counts: len(s.counts)} {
		if v > 0 {
			s.keys = append(s.keys, k)
		}
	}
	slices.Sort(s.keys)
	if s.in == nil {
		s.in = []string{}
	}
	if s.dead == nil {
		s.dead = []string{}
	}
	if s.counts == nil {
		s.counts = map[string]string{}
	}
	return s
}

func (s deadState) String() string {
	return fmt.Sprintf("in %q, dead %q, counts %v, keys %q", s.in, s.dead, s.counts, s.keys)
}

// deadBefore is the state the requeue and drop tests start from.
func deadBefore() deadState {
	return deadState{
		in:   []string{"x"},
		dead: []string{entAcq, entBin, entPoison, entRaw},
		counts: map[string]string{
			sha("acq/1"): "1 1700000000000 t", sha(binEvent): "1 1700000000000 t",
			sha("poison/7"): "3 1700000000000 t", sha("x"): "2 1700000000000 t",
		},
	}
}

// recoveryDeadLetter dead-letters event as recovery does it: in the taken
// list of a replica that never registered, replayed by a leader that
// allows no replay (max_replays 0), at now.
func recoveryDeadLetter(t *testing.T, rdb *redis.Client, event string, now time.Time) {
	t.Helper()
	ctx := t.Context()
	d, err := script.Detect(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	rpush(t, rdb, map[string][]string{"in/taken/gone": {event}})
	rec := recovery.New(rdb, []recovery.Watched{{InputQueue: "in"}}, membership.NewLiveness(rdb, "t:"), recovery.Options{
		Settings: recovery.Settings{Prefix: "t:", MaxReplays: -1, ScanInterval: 5 * time.Millisecond, Now: func() time.Time { return now }},
		Dialect:  d, Logger: slog.New(slog.DiscardHandler)})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rec.Run(rctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if n, err := rdb.LLen(ctx, "in/taken/gone").Result(); err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("recovery did not dead-letter %q within 10s", event)
		}
	}
}

// Shape of `resc dead list --json` as the README documents it.
type deadListJSON struct {
	Queue    string `json:"queue"`
	DeadList string `json:"dead_list"`
	Length   int64  `json:"length"`
	Entries  []struct {
		Index       int64   `json:"index"`
		Event       *string `json:"event"`
		EventBase64 string  `json:"event_base64"`
		Queue       string  `json:"queue"`
		Reason      string  `json:"reason"`
		Replica     string  `json:"replica"`
		Time        string  `json:"time"`
		Count       *int    `json:"count"`
		Raw         *string `json:"raw"`
		RawBase64   string  `json:"raw_base64"`
	} `json:"entries"`
}

// TestDeadList lists entries written by package watcher and by package
// recovery itself (a binary event among them), and one pushed by hand.
func TestDeadList(t *testing.T) {
	clearEnv(t)
	srv := redistest.Start(t)
	rdb := srv.Client()
	cfg := opsConfig(t, srv.URL())
	at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	rpush(t, rdb, map[string][]string{"in/dead": {entAcq}, "jobs/dead": {`{"event":"job"}`}})
	recoveryDeadLetter(t, rdb, binEvent, at)
	recoveryDeadLetter(t, rdb, "poison/7", at.Add(time.Second))
	if err := rdb.LPush(t.Context(), "in/dead", entRaw).Err(); err != nil {
		t.Fatal(err)
	}

	t.Run("table", func(t *testing.T) {
		stdout, stderr, err := runCmd(t, "dead", "list", "--queue", "in", cfg)
		if err != nil {
			t.Fatalf("dead list: %v; stderr:\n%s", err, stderr)
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		want := []struct{ cells, reason string }{
			{"in/dead: 4 entries", ""},
			{"# TIME REPLICA REPLAYS EVENT REASON", ""},
			{"1 2026-11-23T10:58:47Z r1 - acq/1", `rule "enrich": fetch GET http://svc/p/1: status 404`},
			{`2 2026-11-23T11:00:00Z gone 0 "bin/\xff\xfe"`, "replayed 0 times: it may crash replicas (poison event)"},
			{"3 2026-11-23T11:00:01Z gone 0 poison/7", "replayed 0 times: it may crash replicas (poison event)"},
			{`4 - - - "pushed\tby hand"`, "(not a dead-letter entry: pushed by hand?)"},
		}
		if len(lines) != len(want) {
			t.Fatalf("stdout:\n%s\nwant %d lines", stdout, len(want))
		}
		for i, w := range want {
			cells := strings.Join(strings.Fields(lines[i]), " ")
			if !strings.HasPrefix(cells, w.cells) || !strings.HasSuffix(lines[i], w.reason) {
				t.Errorf("line %d: %q, want %q ... %q", i, lines[i], w.cells, w.reason)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		stdout, stderr, err := runCmd(t, "dead", "list", "--json", "--queue", "in", cfg)
		if err != nil {
			t.Fatalf("dead list --json: %v; stderr:\n%s", err, stderr)
		}
		var got, want deadListJSON
		dec := json.NewDecoder(strings.NewReader(stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("decoding %s: %v", stdout, err)
		}
		poison := "replayed 0 times: it may crash replicas (poison event)"
		if err := json.Unmarshal([]byte(`{"queue": "in", "dead_list": "in/dead", "length": 4, "entries": [
  {"index": 1, "event": "acq/1", "queue": "in", "reason": "rule \"enrich\": fetch GET http://svc/p/1: status 404", "replica": "r1", "time": "2026-11-23T10:58:47Z"},
  {"index": 2, "event": "bin/\ufffd\ufffd", "event_base64": "YmluL//+", "queue": "in", "reason": "`+poison+`", "replica": "gone", "time": "2026-11-23T11:00:00Z", "count": 0},
  {"index": 3, "event": "poison/7", "queue": "in", "reason": "`+poison+`", "replica": "gone", "time": "2026-11-23T11:00:01Z", "count": 0},
  {"index": 4, "raw": "pushed\tby hand"}]}`), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("dead list --json:\n got %+v\nwant %+v", got, want)
		}
	})

	t.Run("limit", func(t *testing.T) {
		stdout, _, err := runCmd(t, "dead", "list", "--limit", "2", "--queue", "in", cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stdout, "in/dead: 4 entries, the 2 newest shown\n") {
			t.Errorf("stdout %q, want the newest 2 of 4 said", stdout)
		}
		if !regexp.MustCompile(`(?m)^3 .*\n4 .*\n$`).MatchString(stdout) || strings.Contains(stdout, "acq/1") {
			t.Errorf("stdout:\n%s\nwant #3 and #4 only", stdout)
		}
		stdout, _, err = runCmd(t, "dead", "list", "--json", "--limit", "1", "--queue", "in", cfg)
		if err != nil {
			t.Fatal(err)
		}
		var doc deadListJSON
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Length != 4 || len(doc.Entries) != 1 || doc.Entries[0].Index != 4 {
			t.Errorf("--json --limit 1: %+v, want length 4 and entry #4", doc)
		}
	})

	t.Run("other queue", func(t *testing.T) {
		stdout, _, err := runCmd(t, "dead", "list", "--queue", "jobs", cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stdout, "jobs/dead: 1 entry\n") || !strings.Contains(stdout, "job") {
			t.Errorf("stdout:\n%s\nwant the entry of jobs/dead", stdout)
		}
	})

	t.Run("raw not UTF-8", func(t *testing.T) {
		if err := rdb.LPush(t.Context(), "jobs/dead", "\xff raw").Err(); err != nil {
			t.Fatal(err)
		}
		stdout, _, err := runCmd(t, "dead", "list", "--json", "--limit", "1", "--queue", "jobs", cfg)
		if err != nil {
			t.Fatal(err)
		}
		var doc deadListJSON
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Entries) != 1 || doc.Entries[0].Raw == nil || doc.Entries[0].RawBase64 != "/yByYXc=" {
			t.Errorf("--json of a raw entry that is not UTF-8: %s, want raw_base64 \"/yByYXc=\"", stdout)
		}
	})
}

// TestDeadRequeueDrop requeues and drops by index, all and match: Redis
// before, command, Redis after. The replay counts hash an earlier version
// kept is left alone: the counts travel with the entries now, and a
// requeued event goes back bare (a fresh occurrence).
func TestDeadRequeueDrop(t *testing.T) {
	clearEnv(t)
	before := deadBefore()
	dropped := func(dead ...string) deadState { return deadState{in: before.in, dead: dead, counts: before.counts} }
	tests := []struct {
		name   string
		args   []string // after "resc dead"
		code   int
		stdout []string // lines
		after  deadState
	}{
		{
			name:   "requeue by index",
			args:   []string{"requeue", "--index", "3", "--index", "1", "--index", "3"},
			stdout: []string{"requeued #1 acq/1", "requeued #3 poison/7", "requeued 2, skipped 0"},
			after:  deadState{in: []string{"poison/7", "acq/1", "x"}, dead: []string{entBin, entRaw}, counts: before.counts},
		},
		{
			name: "requeue all but the raw entry",
			args: []string{"requeue", "--all"},
			stdout: []string{"requeued #1 acq/1", `requeued #2 "bin/\xff\xfe"`, "requeued #3 poison/7",
				`skipped #4 "pushed\tby hand": not a dead-letter entry (--raw pushes its text as the event)`, "requeued 3, skipped 1"},
			after: deadState{in: []string{"poison/7", binEvent, "acq/1", "x"}, dead: []string{entRaw}, counts: before.counts},
		},
		{
			name: "requeue all, raw too",
			args: []string{"requeue", "--all", "--raw"},
			stdout: []string{"requeued #1 acq/1", `requeued #2 "bin/\xff\xfe"`, "requeued #3 poison/7",
				`requeued #4 "pushed\tby hand"`, "requeued 4, skipped 0"},
			after: deadState{in: []string{entRaw, "poison/7", binEvent, "acq/1", "x"}, counts: before.counts},
		},
		{
			name:   "requeue by match",
			args:   []string{"requeue", "--match", "^(acq|poison)/"},
			stdout: []string{"requeued #1 acq/1", "requeued #3 poison/7", "requeued 2, skipped 0"},
			after:  deadState{in: []string{"poison/7", "acq/1", "x"}, dead: []string{entBin, entRaw}, counts: before.counts},
		},
		{
			name:   "requeue by match, a binary event byte for byte",
			args:   []string{"requeue", "--match", `^bin/\x{FFFD}`},
			stdout: []string{`requeued #2 "bin/\xff\xfe"`, "requeued 1, skipped 0"},
			after:  deadState{in: []string{binEvent, "x"}, dead: []string{entAcq, entPoison, entRaw}, counts: before.counts},
		},
		{
			name:   "requeue by match, the raw entry",
			args:   []string{"requeue", "--match", "by hand"},
			stdout: []string{`skipped #4 "pushed\tby hand": not a dead-letter entry (--raw pushes its text as the event)`, "requeued 0, skipped 1"},
			after:  before,
		},
		{
			name:   "requeue matching nothing",
			args:   []string{"requeue", "--match", "^nothing$"},
			stdout: []string{"requeued 0, skipped 0"},
			after:  before,
		},
		{
			name:  "requeue an index past the end: nothing done",
			args:  []string{"requeue", "--index", "2", "--index", "5"},
			code:  1,
			after: before,
		},
		{
			name:   "drop by index",
			args:   []string{"drop", "--index", "2"},
			stdout: []string{`dropped #2 "bin/\xff\xfe"`, "dropped 1, skipped 0"},
			after:  dropped(entAcq, entPoison, entRaw),
		},
		{
			name:   "drop by match, the raw entry too",
			args:   []string{"drop", "--match", "hand|acq"},
			stdout: []string{"dropped #1 acq/1", `dropped #4 "pushed\tby hand"`, "dropped 2, skipped 0"},
			after:  dropped(entBin, entPoison),
		},
		{
			name:   "drop all",
			args:   []string{"drop", "--all"},
			stdout: []string{"dropped #1 acq/1", `dropped #2 "bin/\xff\xfe"`, "dropped #3 poison/7", `dropped #4 "pushed\tby hand"`, "dropped 4, skipped 0"},
			after:  dropped(),
		},
		{
			name:  "drop an index past the end: nothing done",
			args:  []string{"drop", "--index", "5"},
			code:  1,
			after: before,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			rdb := srv.Client()
			loadDead(t, rdb, before)
			stdout, stderr, err := runCmd(t, append([]string{"dead", tt.args[0], "--queue", "in", opsConfig(t, srv.URL())}, tt.args[1:]...)...)
			if got := exitCode(err); got != tt.code {
				t.Fatalf("exit code %d (%v), want %d; stderr:\n%s", got, err, tt.code, stderr)
			}
			if tt.code == 1 && err.Error() != "in/dead has no entry #5 (it has 4): nothing done" {
				t.Errorf("error %q", err)
			}
			if got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n"); tt.stdout != nil && !slices.Equal(got, tt.stdout) {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, strings.Join(tt.stdout, "\n"))
			}
			if got, want := readDead(t, rdb), tt.after.withKeys(); !reflect.DeepEqual(got, want) {
				t.Errorf("after:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// snapshot is every key of the server with its DUMP and its expiry time.
func snapshot(t *testing.T, rdb *redis.Client) map[string]string {
	t.Helper()
	ctx := t.Context()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		out[k] = rdb.Dump(ctx, k).Val() + " expires " + rdb.PExpireTime(ctx, k).Val().String()
	}
	return out
}

// TestDeadDryRun: --dry-run says what would be done and writes nothing.
func TestDeadDryRun(t *testing.T) {
	clearEnv(t)
	srv := redistest.Start(t)
	rdb := srv.Client()
	cfg := opsConfig(t, srv.URL())
	loadDead(t, rdb, deadBefore())
	if err := rdb.Expire(t.Context(), counts, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, rdb)
	for _, tc := range []struct {
		args   []string
		stdout []string
	}{
		{[]string{"requeue", "--all"}, []string{"would requeue #1 acq/1", `would requeue #2 "bin/\xff\xfe"`, "would requeue #3 poison/7",
			`skipped #4 "pushed\tby hand": not a dead-letter entry (--raw pushes its text as the event)`, "dry run: would requeue 3, skip 1; nothing written"}},
		{[]string{"requeue", "--raw", "--index", "4"}, []string{`would requeue #4 "pushed\tby hand"`, "dry run: would requeue 1, skip 0; nothing written"}},
		{[]string{"drop", "--all"}, []string{"would drop #1 acq/1", `would drop #2 "bin/\xff\xfe"`, "would drop #3 poison/7", `would drop #4 "pushed\tby hand"`, "dry run: would drop 4, skip 0; nothing written"}},
	} {
		args := append([]string{"dead"}, tc.args...)
		stdout, stderr, err := runCmd(t, append(args, "--dry-run", "--queue", "in", cfg)...)
		if err != nil {
			t.Fatalf("%q: %v; stderr:\n%s", args, err, stderr)
		}
		if got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n"); !slices.Equal(got, tc.stdout) {
			t.Errorf("%q: stdout:\n%s\nwant:\n%s", args, stdout, strings.Join(tc.stdout, "\n"))
		}
		if after := snapshot(t, rdb); !reflect.DeepEqual(after, before) {
			t.Errorf("%q wrote to Redis:\n got %q\nwant %q", args, after, before)
		}
	}
}

// TestDeadRequeueConcurrent: two operators requeue the same entries at the
// same time; each event reaches the input queue once, and what one of them
// found gone is reported as skipped.
func TestDeadRequeueConcurrent(t *testing.T) {
	clearEnv(t)
	srv := redistest.Start(t)
	rdb := srv.Client()
	cfg := opsConfig(t, srv.URL())
	const n = 40
	var entries, events []string
	for i := range n {
		ev := "acq/" + strconv.Itoa(i)
		events = append(events, ev)
		entries = append(entries, watcherEntry(ev, "r"))
	}
	loadDead(t, rdb, deadState{dead: entries})

	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, 2)
	errs := make([]error, 2)
	for i := range outs {
		wg.Go(func() {
			errs[i] = runMain(t.Context(), []string{"dead", "requeue", "--all", "--queue", "in", cfg}, &outs[i], &bytes.Buffer{})
		})
	}
	wg.Wait()
	requeued, skipped := 0, 0
	summary := regexp.MustCompile(`(?m)^requeued (\d+), skipped (\d+)$`)
	for i, out := range outs {
		if errs[i] != nil {
			t.Fatalf("operator %d: %v", i, errs[i])
		}
		m := summary.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("operator %d: no summary in\n%s", i, out.String())
		}
		r, _ := strconv.Atoi(m[1])
		s, _ := strconv.Atoi(m[2])
		if got := strings.Count(out.String(), "no longer in in/dead"); got != s {
			t.Errorf("operator %d: %d entries said gone, summary says %d skipped", i, got, s)
		}
		requeued += r
		skipped += s
	}
	t.Logf("requeued %d, found gone %d", requeued, skipped)
	if requeued != n {
		t.Errorf("requeued %d in all, want %d", requeued, n)
	}
	got := list(t, rdb, "in")
	slices.Sort(got)
	slices.Sort(events)
	if !slices.Equal(got, events) {
		t.Errorf("in = %q, want each event once: %q", got, events)
	}
	assertList(t, rdb, "in/dead")
}

// TestDeadRequeueBadKey: a destination of the wrong type stops the command
// with exit code 1 before anything is written.
func TestDeadRequeueBadKey(t *testing.T) {
	clearEnv(t)
	srv := redistest.Start(t)
	rdb := srv.Client()
	loadDead(t, rdb, deadState{dead: []string{entAcq}})
	if err := rdb.Set(t.Context(), "in", "a string", 0).Err(); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := runCmd(t, "dead", "requeue", "--all", "--queue", "in", opsConfig(t, srv.URL()))
	if exitCode(err) != 1 || !strings.Contains(err.Error(), `the input queue is not a list: "in"`) {
		t.Errorf("err = %v, want exit code 1 naming the input queue", err)
	}
	if want := "requeued 0, skipped 0, then stopped\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	assertList(t, rdb, "in/dead", entAcq)
	if err := rdb.Set(t.Context(), keyspace.DeadList("jobs"), "a string", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(t, "dead", "list", "--queue", "jobs", opsConfig(t, srv.URL())); exitCode(err) != 1 || !strings.Contains(err.Error(), "not a list") {
		t.Errorf("list of a string: err = %v, want exit code 1", err)
	}
}

// TestDeadTaskQueue: `resc dead` works on the dead-letter list of a task
// queue that SDK workers announced, and refuses, naming both, a queue that
// is neither a watcher's nor a worker's.
func TestDeadTaskQueue(t *testing.T) {
	clearEnv(t)
	srv := redistest.Start(t)
	rdb := srv.Client()
	cfg := opsConfig(t, srv.URL())
	ctx := t.Context()
	if err := rdb.HSet(ctx, "t:worker-queues", "thumbs/todo", 1).Err(); err != nil {
		t.Fatal(err)
	}
	rpush(t, rdb, map[string][]string{"thumbs/todo/dead": {`{"event":"thumb/1","queue":"thumbs/todo","reason":"failed 5 times, last: boom","replica":"w1","time":"2026-12-07T08:00:00Z","attempts":5}`}})
	stdout, stderr, err := runCmd(t, "dead", "list", "--queue", "thumbs/todo", cfg)
	if err != nil || !strings.Contains(stdout, "thumbs/todo/dead: 1 entry") || !strings.Contains(stdout, "failed 5 times, last: boom") {
		t.Fatalf("dead list of a task queue: %v\n%s%s", err, stdout, stderr)
	}
	if _, stderr, err := runCmd(t, "dead", "requeue", "--all", "--queue", "thumbs/todo", cfg); err != nil {
		t.Fatalf("requeue: %v\n%s", err, stderr)
	}
	if got := rdb.LRange(ctx, "thumbs/todo", 0, -1).Val(); len(got) != 1 || got[0] != "thumb/1" {
		t.Errorf("task queue after requeue %q, want the task", got)
	}
	_, _, err = runCmd(t, "dead", "list", "--queue", "nope", cfg)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, `no watcher has input queue "nope", and no worker of the Go SDK announced it`) {
		t.Errorf("unknown queue: %#v", err)
	}
}
