package membership

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
)

// TestPrune, Redis before, passes, Redis after: a dead entry is marked at
// the first pass, kept until the retention has passed, then removed with
// its info and owner entries; one whose taken list holds events is kept
// until the list is empty (the leader replays it first); a live one is
// never touched; an entry found alive again loses its mark; two leaders
// pruning at once remove each entry once, with no error.
func TestPrune(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const retention = time.Hour
	t0 := time.UnixMilli(1_800_000_000_000)
	now := t0
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	opts := Options{Settings: e.s, Dialect: e.d, Logger: e.log, Now: clock}
	p := NewPruner(e.rdb, retention, opts)
	prefix := e.s.Prefix

	alive := e.register("alive", Options{}, "q/taken/alive")
	run(t, alive)
	e.register("empty", Options{}, "q/taken/empty")
	e.register("holding", Options{}, "q/taken/holding")
	if err := e.rdb.LPush(ctx, "q/taken/holding", "ev").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*e.s.DeadAfter, "the replicas without heartbeat are dead", func() bool {
		n, err := e.rdb.Exists(ctx, keyspace.Replica(prefix, "empty"), keyspace.Replica(prefix, "holding")).Result()
		return err == nil && n == 0
	})
	pass := func(want PruneStats) {
		t.Helper()
		got, err := p.Prune(ctx)
		if err != nil || got != want {
			t.Fatalf("Prune = %+v, %v; want %+v", got, err, want)
		}
	}
	registry := func() []string {
		t.Helper()
		ids, err := e.rdb.ZRange(ctx, keyspace.Replicas(prefix), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		return ids
	}

	pass(PruneStats{Marked: 2})
	rs, err := Replicas(ctx, e.rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Alive && !r.DeadSince.IsZero() || !r.Alive && !r.DeadSince.Equal(t0) {
			t.Errorf("%s: alive %v, dead since %v; want %v for a dead one, zero for a live one", r.ID, r.Alive, r.DeadSince, t0)
		}
	}
	advance(retention - time.Millisecond)
	pass(PruneStats{})
	if got := registry(); !reflect.DeepEqual(got, []string{"alive", "empty", "holding"}) {
		t.Fatalf("registry before the retention: %q", got)
	}
	advance(time.Millisecond)
	pass(PruneStats{Held: 1, Removed: 1})
	if got := registry(); !reflect.DeepEqual(got, []string{"alive", "holding"}) {
		t.Errorf("registry after the retention: %q, want the live one and the one holding events", got)
	}
	owners, _ := Owners(ctx, e.rdb, prefix)
	if !reflect.DeepEqual(owners, map[string]string{"q/taken/alive": "alive", "q/taken/holding": "holding"}) {
		t.Errorf("owners: %v", owners)
	}
	// The leader replays the list: the entry goes at the next pass.
	if err := e.rdb.Del(ctx, "q/taken/holding").Err(); err != nil {
		t.Fatal(err)
	}
	pass(PruneStats{Removed: 1})
	if got := registry(); !reflect.DeepEqual(got, []string{"alive"}) {
		t.Errorf("registry once replayed: %q", got)
	}
	if n := e.rdb.HLen(ctx, keyspace.DeadSince(prefix)).Val(); n != 0 {
		t.Errorf("%d dead-since marks left, want 0", n)
	}

	// Found dead, then alive again (a restart under the same id): the
	// mark goes, and the clock starts again at its next death.
	back := e.register("back", Options{})
	stopBack := run(t, back)
	if err := stopBack(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*e.s.DeadAfter, "back is dead", func() bool {
		return e.rdb.Exists(ctx, keyspace.Replica(prefix, "back")).Val() == 0
	})
	pass(PruneStats{Marked: 1})
	run(t, e.register("back", Options{WaitForExpiry: true}))
	pass(PruneStats{})
	if e.rdb.HExists(ctx, keyspace.DeadSince(prefix), "back").Val() {
		t.Error("the mark of a replica alive again is still there")
	}

	// Two leaders at once, on many dead entries: each removed once.
	var ids []string
	for i := range 20 {
		id := "gone-" + string(rune('a'+i))
		ids = append(ids, id)
		e.register(id, Options{}, "q/taken/"+id)
	}
	eventually(t, 4*e.s.DeadAfter, "the 20 are dead", func() bool {
		for _, id := range ids {
			if e.rdb.Exists(ctx, keyspace.Replica(prefix, id)).Val() != 0 {
				return false
			}
		}
		return true
	})
	p2 := NewPruner(e.rdb, retention, opts)
	if _, err := p.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	advance(retention)
	var wg sync.WaitGroup
	stats := make([]PruneStats, 2)
	errs := make([]error, 2)
	for i, pr := range []*Pruner{p, p2} {
		wg.Go(func() { stats[i], errs[i] = pr.Prune(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := stats[0].Removed + stats[1].Removed; n != 20 {
		t.Errorf("two leaders removed %d entries, want 20 (%+v)", n, stats)
	}
	if got := registry(); !reflect.DeepEqual(got, []string{"alive", "back"}) {
		t.Errorf("registry after two leaders pruned: %q", got)
	}

	// A retention of zero keeps everything.
	if st, err := NewPruner(e.rdb, 0, opts).Prune(ctx); err != nil || st != (PruneStats{}) {
		t.Errorf("retention 0: %+v, %v", st, err)
	}
	// A registry key of the wrong type is named.
	if err := e.rdb.Set(ctx, keyspace.DeadSince(prefix), "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Prune(ctx); !errors.Is(err, ErrWrongType) {
		t.Errorf("dead-since key of the wrong type: %v, want ErrWrongType", err)
	}
}

// TestPruneScript: prune.lua's refusals, each writing nothing.
func TestPruneScript(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p := e.s.Prefix
	keys := []string{keyspace.Replica(p, "x"), keyspace.ReplicaInfo(p, "x"), keyspace.Replicas(p), keyspace.Owners(p), keyspace.DeadSince(p)}
	if err := e.rdb.ZAdd(ctx, keys[2], redis.Z{Score: 1, Member: "x"}).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []any
		want []int64
	}{
		{"empty id", []any{"", 1, 1000, "0"}, []int64{7}},
		{"zero retention", []any{"x", 1, 0, "0"}, []int64{7}},
		{"now not a number", []any{"x", "soon", 1000, "0"}, []int64{7}},
		{"not registered", []any{"y", 1, 1000, "0"}, []int64{1, 0}},
	} {
		got, err := pruneScript.Run(ctx, e.d, e.rdb, keys, tc.args...).Int64Slice()
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if n := e.rdb.Exists(ctx, keys[4]).Val(); n != 0 {
		t.Errorf("a refusal wrote the marks")
	}
	for i := range 5 {
		if err := e.rdb.RPush(ctx, keys[i]+":bad", "v").Err(); err != nil {
			t.Fatal(err)
		}
		bad := slices.Clone(keys)
		bad[i] += ":bad"
		got, err := pruneScript.Run(ctx, e.d, e.rdb, bad, "x", 1, 1000, "0").Int64Slice()
		if err != nil || !slices.Equal(got, []int64{int64(i + 2)}) {
			t.Errorf("KEYS[%d] a list: %v, %v; want {%d}", i+1, got, err, i+2)
		}
	}
	if e.rdb.ZScore(ctx, keys[2], "x").Err() != nil || e.rdb.Exists(ctx, keys[4]).Val() != 0 {
		t.Error("a refusal changed the registry or the marks")
	}
}
