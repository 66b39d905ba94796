package membership

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/registry"
)

// TestRegistryDefaults: internal/registry restates config's defaults (so
// that a worker program does not link config); they must agree.
func TestRegistryDefaults(t *testing.T) {
	t.Parallel()
	if registry.DefaultPrefix != config.DefaultKeyPrefix || registry.DefaultHeartbeatInterval != config.DefaultHeartbeatInterval ||
		registry.DefaultDeadAfter != config.DefaultDeadAfter {
		t.Errorf("registry defaults %q %v %v, config's %q %v %v", registry.DefaultPrefix, registry.DefaultHeartbeatInterval, registry.DefaultDeadAfter,
			config.DefaultKeyPrefix, config.DefaultHeartbeatInterval, config.DefaultDeadAfter)
	}
	if got, want := TestSettings().Registry(), registry.TestSettings(); got != want {
		t.Errorf("test presets %+v and %+v", got, want)
	}
}

func TestSettingsValidate(t *testing.T) {
	t.Parallel()
	if got := (Settings{}).WithDefaults(); got != (Settings{Prefix: config.DefaultKeyPrefix, HeartbeatInterval: time.Second, DeadAfter: 5 * time.Second, LeaderTTL: 4 * time.Second}) {
		t.Errorf("defaults: %+v", got)
	}
	for _, tc := range []struct {
		name string
		s    Settings
		want []string // substrings, one per problem
	}{
		{name: "defaults", s: Settings{}},
		{name: "test preset", s: TestSettings()},
		{name: "heartbeat too slow", s: Settings{HeartbeatInterval: 2500 * time.Millisecond}, want: []string{"HeartbeatInterval (2.5s) must be below half of DeadAfter (5s)"}},
		{name: "every problem", s: Settings{HeartbeatInterval: time.Microsecond, DeadAfter: time.Microsecond, LeaderTTL: -time.Second},
			want: []string{"HeartbeatInterval is 1µs", "DeadAfter is 1µs", "LeaderTTL is -1s", "below half of DeadAfter"}},
		{name: "negative", s: Settings{HeartbeatInterval: -1}, want: []string{"HeartbeatInterval is -1ns"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate: no error")
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tc.want) {
				t.Errorf("%d problems, want %d: %v", n, len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q missing from %v", w, err)
				}
			}
		})
	}
	if s := TestSettings(); s.Registry().LeaseFor() != 300*time.Millisecond {
		t.Errorf("lease of the test preset: %v, want 300ms", s.Registry().LeaseFor())
	}
}

func TestReplicas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	at := func(sec int64) Options {
		return Options{Now: func() time.Time { return time.Unix(sec, 0) }}
	}
	alive := e.register("alive", at(100), "q/taken/alive")
	run(t, alive)
	// dead registers but never heartbeats: it expires after DeadAfter.
	dead := e.register("dead", at(200), "q/taken/dead")
	deadLease := dead.Lease()

	eventually(t, 2*e.s.DeadAfter, "the replica without heartbeat is dead", func() bool {
		rs, err := Replicas(ctx, e.rdb, e.s.Prefix)
		return err == nil && len(rs) == 2 && !rs[1].Alive
	})
	if deadLease.Err() == nil {
		t.Error("the replica without heartbeat still has a lease while dead")
	}
	rs, err := Replicas(ctx, e.rdb, e.s.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	a, d := rs[0], rs[1]
	wantInfo := e.info("alive", "q/taken/alive")
	wantInfo.DeadAfter = e.s.DeadAfter
	if a.ID != "alive" || !a.Alive || !a.Registered.Equal(time.Unix(100, 0)) || !reflect.DeepEqual(a.Info, wantInfo) || a.InfoErr != nil {
		t.Errorf("alive: %+v", a)
	}
	if a.TTL <= 0 || a.TTL > e.s.DeadAfter || a.HeartbeatAge < 0 || a.HeartbeatAge >= e.s.DeadAfter || a.HeartbeatAge+a.TTL != e.s.DeadAfter {
		t.Errorf("alive: TTL %v, heartbeat age %v", a.TTL, a.HeartbeatAge)
	}
	if d.ID != "dead" || d.Alive || d.TTL != 0 || d.HeartbeatAge != 0 || !reflect.DeepEqual(d.Info, Info{}) || !d.Registered.Equal(time.Unix(200, 0)) {
		t.Errorf("dead: %+v", d)
	}
	live := NewLiveness(e.rdb, e.s.Prefix)
	if got, err := live.Alive(ctx, []string{"dead", "alive", "never-registered"}); err != nil || !reflect.DeepEqual(got, []bool{false, true, false}) {
		t.Errorf("Alive: %v %v", got, err)
	}
	if got, err := live.Alive(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("Alive(nil): %v %v", got, err)
	}
	owners, err := Owners(ctx, e.rdb, e.s.Prefix)
	if err != nil || !reflect.DeepEqual(owners, map[string]string{"q/taken/alive": "alive", "q/taken/dead": "dead"}) {
		t.Errorf("Owners: %v %v", owners, err)
	}

	// A corrupt info key is reported on its replica, not for the listing.
	if err := e.rdb.Set(ctx, keyspace.ReplicaInfo(e.s.Prefix, "alive"), "{", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rs, err = Replicas(ctx, e.rdb, e.s.Prefix)
	if err != nil || len(rs) != 2 || rs[0].InfoErr == nil || !rs[0].Alive {
		t.Errorf("with a corrupt info: %+v, %v", rs, err)
	}

	// An empty registry, and Redis down.
	if rs, err := Replicas(ctx, e.rdb, "nothing-here:"); err != nil || len(rs) != 0 {
		t.Errorf("empty registry: %v %v", rs, err)
	}
	e.srv.Stop()
	if _, err := Replicas(ctx, e.rdb, e.s.Prefix); err == nil {
		t.Error("Replicas with Redis down: no error")
	}
	if _, err := Owners(ctx, e.rdb, e.s.Prefix); err == nil {
		t.Error("Owners with Redis down: no error")
	}
	if _, err := live.Alive(ctx, []string{"alive"}); err == nil {
		t.Error("Alive with Redis down: no error")
	}
}
