package registry

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/script"
)

// The scripts' tests are written as "Redis before, call, Redis after": a
// dataset is a map of key to value, where a string is a STRING, a
// map[string]string a HASH, a map[string]float64 a ZSET and a []string a
// LIST (left to right).
type dataset = redistest.Data

// dump returns the whole dataset of the test's server (each test has its
// own server, so that is only the test's keys).
func (e *env) dump() dataset {
	e.t.Helper()
	return redistest.Dump(e.t, e.rdb, "*")
}

func (e *env) pttl(key string) time.Duration {
	e.t.Helper()
	d, err := e.rdb.PTTL(context.Background(), key).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// TestScriptsLoad loads every script, in both forms, on a real server.
func TestScriptsLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for name, s := range map[string]*script.Script{
		"register.lua":   registerScript,
		"heartbeat.lua":  heartbeatScript,
		"deregister.lua": deregisterScript,
	} {
		for _, d := range []script.Dialect{{}, {Legacy: true}} {
			if err := s.Load(ctx, d, e.rdb); err != nil {
				t.Errorf("%s (%v): %v", name, d, err)
				continue
			}
			ok, err := e.rdb.ScriptExists(ctx, s.Hash(d)).Result()
			if err != nil || !ok[0] {
				t.Errorf("%s (%v): not in the script cache after Load: %v %v", name, d, ok, err)
			}
		}
	}
}

const (
	tp  = "p:" // prefix of the script tests' datasets
	tid = "r1"
)

// scope runs one case of a script table on the table's server, under a
// prefix of its own: the datasets of the table name keys with the prefix
// tp, which scope maps to its own and back.
type scope struct {
	e *env
	p string
}

func (e *env) scope(t *testing.T, i int) scope {
	ec := *e
	ec.t = t
	return scope{e: &ec, p: fmt.Sprintf("case%d:", i)}
}

func (s scope) key(k string) string {
	if !strings.HasPrefix(k, tp) {
		s.e.t.Fatalf("dataset key %q without the prefix %q", k, tp)
	}
	return s.p + k[len(tp):]
}

func (s scope) keys(ks []string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = s.key(k)
	}
	return out
}

func (s scope) load(ds dataset) {
	mapped := dataset{}
	for k, v := range ds {
		mapped[s.key(k)] = v
	}
	redistest.Load(s.e.t, s.e.rdb, mapped)
}

func (s scope) dump() dataset {
	ds := dataset{}
	for k, v := range redistest.Dump(s.e.t, s.e.rdb, s.p+"*") {
		ds[tp+k[len(s.p):]] = v
	}
	return ds
}

func (s scope) pttl(k string) time.Duration { return s.e.pttl(s.key(k)) }

var (
	kReplica  = keyspace.Replica(tp, tid)
	kInfo     = keyspace.ReplicaInfo(tp, tid)
	kReplicas = keyspace.Replicas(tp)
	kOwners   = keyspace.Owners(tp)
	regKeys   = []string{kReplica, kInfo, kReplicas, kOwners}
)

func TestRegisterScript(t *testing.T) {
	t.Parallel()
	const info = `{"id":"r1"}`
	registered := dataset{
		kReplica:  "new",
		kInfo:     info,
		kReplicas: map[string]float64{tid: 1000},
		kOwners:   map[string]string{"q/taken/r1": tid},
	}
	e := newEnv(t) // one server for the table: each case has its own prefix
	for i, tc := range []struct {
		name      string
		before    dataset
		args      []any // token, previous, ttl, id, now, info, lists...
		want      []int64
		after     dataset
		freshTTLs bool // the replica and info keys have the TTL of args
	}{
		{
			name:      "free id",
			args:      []any{"new", "", 60000, tid, 1000, info, "q/taken/r1"},
			want:      []int64{1, 0},
			after:     registered,
			freshTTLs: true,
		},
		{
			name:      "retry of a registration whose reply was lost",
			before:    dataset{kReplica: "new"},
			args:      []any{"new", "", 60000, tid, 1000, info, "q/taken/r1"},
			want:      []int64{1, 1},
			after:     registered,
			freshTTLs: true,
		},
		{
			name:      "re-registration over the previous token",
			before:    dataset{kReplica: "old", kInfo: "{}", kReplicas: map[string]float64{tid: 1, "r2": 2}},
			args:      []any{"new", "old", 60000, tid, 1000, info, "q/taken/r1"},
			want:      []int64{1, 1},
			after:     dataset{kReplica: "new", kInfo: info, kReplicas: map[string]float64{tid: 1000, "r2": 2}, kOwners: map[string]string{"q/taken/r1": tid}},
			freshTTLs: true,
		},
		{
			name:   "in use by another live registration",
			before: dataset{kReplica: "other"},
			args:   []any{"new", "old", 60000, tid, 1000, info, "q/taken/r1"},
			want:   []int64{0, -1}, // the key of the test has no TTL
			after:  dataset{kReplica: "other"},
		},
		{
			name: "owned lists: stale ones of this id dropped, others' kept",
			before: dataset{kOwners: map[string]string{
				"old/r1": tid, "q/taken/r1": tid, "q/taken/r2": "r2",
			}},
			args: []any{"new", "", 60000, tid, 1000, info, "q/taken/r1", "z/taken/r1"},
			want: []int64{1, 0},
			after: dataset{kReplica: "new", kInfo: info, kReplicas: map[string]float64{tid: 1000},
				kOwners: map[string]string{"q/taken/r1": tid, "z/taken/r1": tid, "q/taken/r2": "r2"}},
		},
		{name: "replica key not a string", before: dataset{kReplica: []string{"x"}},
			args: []any{"new", "", 60000, tid, 1000, info}, want: []int64{2}, after: dataset{kReplica: []string{"x"}}},
		{name: "info key not a string", before: dataset{kInfo: []string{"x"}},
			args: []any{"new", "", 60000, tid, 1000, info}, want: []int64{3}, after: dataset{kInfo: []string{"x"}}},
		{name: "registry not a zset", before: dataset{kReplicas: "x"},
			args: []any{"new", "", 60000, tid, 1000, info}, want: []int64{4}, after: dataset{kReplicas: "x"}},
		{name: "owners not a hash", before: dataset{kOwners: "x"},
			args: []any{"new", "", 60000, tid, 1000, info}, want: []int64{5}, after: dataset{kOwners: "x"}},
		{name: "empty token", args: []any{"", "", 60000, tid, 1000, info}, want: []int64{6, 1}, after: dataset{}},
		{name: "ttl not a number", args: []any{"new", "", "x", tid, 1000, info}, want: []int64{6, 3}, after: dataset{}},
		{name: "ttl not whole", args: []any{"new", "", "1.5", tid, 1000, info}, want: []int64{6, 3}, after: dataset{}},
		{name: "ttl zero", args: []any{"new", "", 0, tid, 1000, info}, want: []int64{6, 3}, after: dataset{}},
		{name: "empty id", args: []any{"new", "", 60000, "", 1000, info}, want: []int64{6, 4}, after: dataset{}},
		{name: "time not a number", args: []any{"new", "", 60000, tid, "x", info}, want: []int64{6, 5}, after: dataset{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := e.scope(t, i)
			sc.load(tc.before)
			got, err := registerScript.Run(context.Background(), e.d, e.rdb, sc.keys(regKeys), tc.args...).Int64Slice()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("reply %v, want %v", got, tc.want)
			}
			if after := sc.dump(); !reflect.DeepEqual(after, tc.after) {
				t.Errorf("after:\n got %v\nwant %v", after, tc.after)
			}
			if tc.freshTTLs {
				for _, k := range []string{kReplica, kInfo} {
					if d := sc.pttl(k); d <= 59*time.Second || d > 60*time.Second {
						t.Errorf("PTTL %s = %v, want about 60s", k, d)
					}
				}
			}
		})
	}
}

func TestRegisterScriptReportsPTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := e.rdb.Set(ctx, kReplica, "other", 30*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := registerScript.Run(ctx, e.d, e.rdb, regKeys, "new", "", 60000, tid, 1000, "{}").Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 0 || got[1] <= 29000 || got[1] > 30000 {
		t.Fatalf("reply %v, want {0, about 30000}", got)
	}
}

func TestHeartbeatScript(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // one server for the table: each case has its own prefix
	for i, tc := range []struct {
		name    string
		before  dataset
		args    []any // token, ttl
		want    []int64
		renewed bool // both keys' TTLs set to about 60 s; else left without TTL
	}{
		{name: "own registration", before: dataset{kReplica: "tok", kInfo: "{}"}, args: []any{"tok", 60000}, want: []int64{1}, renewed: true},
		{name: "taken over", before: dataset{kReplica: "other", kInfo: "{}"}, args: []any{"tok", 60000}, want: []int64{0}},
		{name: "expired", before: dataset{kInfo: "{}"}, args: []any{"tok", 60000}, want: []int64{0}},
		{name: "replica key of another type", before: dataset{kReplica: []string{"tok"}, kInfo: "{}"}, args: []any{"tok", 60000}, want: []int64{0}},
		{name: "bad ttl", before: dataset{kReplica: "tok", kInfo: "{}"}, args: []any{"tok", "soon"}, want: []int64{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := e.scope(t, i)
			sc.load(tc.before)
			got, err := heartbeatScript.Run(context.Background(), e.d, e.rdb, sc.keys(regKeys[:2]), tc.args...).Int64Slice()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("reply %v, want %v", got, tc.want)
			}
			if after := sc.dump(); !reflect.DeepEqual(after, tc.before) {
				t.Errorf("values changed:\n got %v\nwant %v", after, tc.before)
			}
			for k := range tc.before {
				d := sc.pttl(k)
				if tc.renewed && (d <= 59*time.Second || d > 60*time.Second) {
					t.Errorf("PTTL %s = %v, want about 60s", k, d)
				}
				if !tc.renewed && d != -1 {
					t.Errorf("PTTL %s = %v, want none (untouched)", k, d)
				}
			}
		})
	}
}

func TestDeregisterScript(t *testing.T) {
	t.Parallel()
	full := dataset{
		kReplica:  "tok",
		kInfo:     "{}",
		kReplicas: map[string]float64{tid: 1, "r2": 2},
		kOwners:   map[string]string{"q/taken/r1": tid, "z/taken/r1": "r2", "q/taken/r2": "r2"},
	}
	gone := dataset{
		kReplicas: map[string]float64{"r2": 2},
		// z/taken/r1 is passed but owned by r2: kept.
		kOwners: map[string]string{"z/taken/r1": "r2", "q/taken/r2": "r2"},
	}
	with := func(k string, v any) dataset {
		ds := dataset{}
		for k, v := range full {
			ds[k] = v
		}
		ds[k] = v
		return ds
	}
	e := newEnv(t) // one server for the table: each case has its own prefix
	for i, tc := range []struct {
		name   string
		before dataset
		args   []any // token, pending, id, lists...
		want   []int64
		after  dataset
	}{
		{name: "own registration", before: full, args: []any{"tok", "", tid, "q/taken/r1", "z/taken/r1"}, want: []int64{1}, after: gone},
		{name: "pending token", before: full, args: []any{"old", "tok", tid, "q/taken/r1", "z/taken/r1"}, want: []int64{1}, after: gone},
		{name: "taken over", before: with(kReplica, "other"), args: []any{"tok", "", tid, "q/taken/r1"}, want: []int64{0}, after: with(kReplica, "other")},
		{name: "empty value is no token", before: with(kReplica, ""), args: []any{"tok", "", tid, "q/taken/r1"}, want: []int64{0}, after: with(kReplica, "")},
		{name: "expired", before: dataset{kReplicas: map[string]float64{tid: 1}}, args: []any{"tok", "", tid}, want: []int64{0}, after: dataset{kReplicas: map[string]float64{tid: 1}}},
		{name: "info key of another type", before: with(kInfo, []string{"x"}), args: []any{"tok", "", tid}, want: []int64{2}, after: with(kInfo, []string{"x"})},
		{name: "registry of another type", before: with(kReplicas, "x"), args: []any{"tok", "", tid}, want: []int64{3}, after: with(kReplicas, "x")},
		{name: "owners of another type", before: with(kOwners, "x"), args: []any{"tok", "", tid}, want: []int64{4}, after: with(kOwners, "x")},
		{name: "empty id", before: full, args: []any{"tok", "", ""}, want: []int64{5}, after: full},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := e.scope(t, i)
			sc.load(tc.before)
			got, err := deregisterScript.Run(context.Background(), e.d, e.rdb, sc.keys(regKeys), tc.args...).Int64Slice()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("reply %v, want %v", got, tc.want)
			}
			if after := sc.dump(); !reflect.DeepEqual(after, tc.after) {
				t.Errorf("after:\n got %v\nwant %v", after, tc.after)
			}
		})
	}
}

// TestLegacyDialect runs a registration's life on a server without #!lua
// support (miniredis, the embedded server of `make run`).
func TestLegacyDialect(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	d, err := script.Detect(ctx, rdb)
	if err != nil || !d.Legacy {
		t.Fatalf("Detect on miniredis: %v, %v; want legacy", d, err)
	}
	s := TestSettings()
	m, err := Register(ctx, rdb, Info{ID: "r1", TakenLists: []string{"q/taken/r1"}}, Options{Settings: s, Dialect: d})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Register(ctx, rdb, Info{ID: "r1"}, Options{Settings: s, Dialect: d}); !errors.Is(err, ErrIDInUse) {
		t.Fatalf("second Register: %v, want ErrIDInUse", err)
	}
	if _, ok, err := m.heartbeat(ctx); err != nil || !ok {
		t.Fatalf("heartbeat: %v %v", ok, err)
	}
	if err := m.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	if keys := mr.Keys(); len(keys) != 0 {
		t.Fatalf("keys left after Deregister: %v", keys)
	}
}
