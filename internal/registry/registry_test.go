package registry

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
)

func TestRegisterRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := Register(ctx, e.rdb, Info{}, Options{Settings: e.s, Logger: e.log, Dialect: e.d}); err == nil || !strings.Contains(err.Error(), "Info.ID") {
		t.Errorf("no id: %v", err)
	}
	if _, err := Register(ctx, e.rdb, e.info("a/b"), Options{Settings: e.s, Logger: e.log, Dialect: e.d}); err == nil || !strings.Contains(err.Error(), "'/'") {
		t.Errorf("id with a slash: %v", err)
	}
	bad := e.s
	bad.HeartbeatInterval = bad.DeadAfter
	if _, err := Register(ctx, e.rdb, e.info("r1"), Options{Settings: bad, Logger: e.log, Dialect: e.d}); err == nil {
		t.Error("bad settings: no error")
	}
	if ds := e.dump(); len(ds) != 0 {
		t.Errorf("written: %v", ds)
	}
}

// TestRegisterHeartbeatDeregister follows a registration's whole life: the
// heartbeat keeps it alive well past DeadAfter, and Deregister removes
// every trace of it.
func TestRegisterHeartbeatDeregister(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	start := time.Now()
	m := e.register("r1", Options{Now: func() time.Time { return time.Unix(1800000000, 0) }}, "q/taken/r1", "z/taken/r1")
	lease := m.Lease()
	stop := run(t, m)

	want := dataset{
		keyspace.Replica(e.s.Prefix, "r1"):     m.token,
		keyspace.ReplicaInfo(e.s.Prefix, "r1"): m.infoJSON,
		keyspace.Replicas(e.s.Prefix):          map[string]float64{"r1": 1800000000},
		keyspace.Owners(e.s.Prefix):            map[string]string{"q/taken/r1": "r1", "z/taken/r1": "r1"},
	}
	if ds := e.dump(); !reflect.DeepEqual(ds, want) {
		t.Fatalf("after Register:\n got %v\nwant %v", ds, want)
	}
	// Three DeadAfters: the key would have expired twice without the
	// heartbeat. Check it at every turn.
	for time.Since(start) < 3*e.s.DeadAfter {
		if d := e.pttl(keyspace.Replica(e.s.Prefix, "r1")); d <= 0 {
			t.Fatalf("replica key PTTL %v after %v", d, time.Since(start))
		}
		if lease.Err() != nil {
			t.Fatalf("lease lost while Redis is up: %v", context.Cause(lease))
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if ds := e.dump(); !reflect.DeepEqual(ds, want) {
		t.Fatalf("after heartbeats:\n got %v\nwant %v", ds, want)
	}

	// Shutdown order: stop the heartbeat (which ends the lease), then
	// deregister with a fresh context.
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !errors.Is(context.Cause(lease), ErrStopped) {
		t.Errorf("lease cause after Run returned: %v, want ErrStopped", context.Cause(lease))
	}
	if _, err := m.WaitLease(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("WaitLease after Run returned: %v, want ErrStopped", err)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := m.Deregister(dctx); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if ds := e.dump(); len(ds) != 0 {
		t.Errorf("left after Deregister: %v", ds)
	}
	if err := m.Deregister(dctx); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("second Deregister: %v, want ErrNotRegistered", err)
	}
	if err := m.Run(ctx); err == nil {
		t.Error("second Run: no error")
	}
}

func TestIDInUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	m := e.register("r1", Options{})
	run(t, m)
	before := e.dump()

	_, err := Register(ctx, e.rdb, e.info("r1", "other/r1"), Options{Settings: e.s, Logger: e.log, Dialect: e.d})
	if !errors.Is(err, ErrIDInUse) {
		t.Fatalf("second Register: %v, want ErrIDInUse", err)
	}
	var inUse *IDInUseError
	if !errors.As(err, &inUse) || inUse.ID != "r1" || inUse.ExpiresIn <= 0 || inUse.ExpiresIn > e.s.DeadAfter {
		t.Fatalf("error %#v, want an *IDInUseError for r1 expiring within DeadAfter", err)
	}
	if !strings.Contains(err.Error(), `membership: replica id "r1" is in use by a live replica`) {
		t.Errorf("message: %v", err)
	}
	if after := e.dump(); !reflect.DeepEqual(after, before) {
		t.Errorf("the refused registration wrote:\n got %v\nwant %v", after, before)
	}
	if m.Lease().Err() != nil {
		t.Errorf("the live replica lost its lease: %v", context.Cause(m.Lease()))
	}
}

// TestWaitForExpiry: a replica restarted under the id of a crashed one
// waits for the old heartbeat to expire; it is refused if the old one is
// still alive.
func TestWaitForExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	old := e.register("r1", Options{})
	stopOld := run(t, old)

	// While the old one heartbeats, waiting ends in ErrIDInUse, not
	// before DeadAfter + HeartbeatInterval. (Bounds load can only push
	// the right way: a lower one on the wait, and the end of the wait
	// itself, which is Register's own deadline.)
	start := time.Now()
	_, err := Register(ctx, e.rdb, e.info("r1"), Options{Settings: e.s, Logger: e.log, Dialect: e.d, WaitForExpiry: true})
	waited := time.Since(start)
	if !errors.Is(err, ErrIDInUse) {
		t.Fatalf("Register against a live replica: %v, want ErrIDInUse", err)
	}
	if bound := e.s.DeadAfter + e.s.HeartbeatInterval; waited < bound-10*time.Millisecond {
		t.Errorf("gave up after %v, want not before %v", waited, bound)
	}

	// The old one crashes (stops heartbeating, no deregistration): the
	// new registration waits for its key to expire, not for its own
	// deadline (it would then fail with ErrIDInUse), and takes over no
	// earlier than the key's expiry.
	if err := stopOld(); err != nil {
		t.Fatal(err)
	}
	left := e.rdb.PTTL(ctx, keyspace.Replica(e.s.Prefix, "r1")).Val()
	crashed := time.Now()
	m, err := Register(ctx, e.rdb, e.info("r1"), Options{Settings: e.s, Logger: e.log, Dialect: e.d, WaitForExpiry: true})
	if err != nil {
		t.Fatalf("Register after the old one stopped: %v", err)
	}
	if took := time.Since(crashed); left <= 0 || took < left-10*time.Millisecond {
		t.Errorf("took over after %v, the old key had %v left: want no earlier than its expiry", took, left)
	}
	if got := e.rdb.Get(ctx, keyspace.Replica(e.s.Prefix, "r1")).Val(); got != m.token || got == old.token {
		t.Errorf("replica key %q, want the new token %q", got, m.token)
	}
	if m.Lease().Err() != nil {
		t.Error("new registration without a live lease")
	}
	if !strings.Contains(e.logs.String(), "waiting for it to expire") {
		t.Error("the wait was not logged")
	}
}

// TestLeaseFencesBeforeDeadAfter stops Redis: the lease must end strictly
// before DeadAfter has passed since the last renewal that succeeded was
// sent (when another replica could first see this one dead), and the
// membership comes back with a new lease once Redis is back.
func TestLeaseFencesBeforeDeadAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := e.register("r1", Options{}, "q/taken/r1")
	registered := m.renewed
	run(t, m)
	lease := m.Lease()
	eventually(t, time.Second, "a heartbeat renewed the registration", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.renewed.After(registered)
	})

	e.srv.Stop()
	stopped := time.Now()
	lost := waitDone(t, lease, 2*e.s.DeadAfter, "lease lost after Redis stopped")
	m.mu.Lock()
	last := m.renewed
	m.mu.Unlock()
	sinceRenewal := lost.Sub(last)
	t.Logf("lease lost %v after the last renewal sent, %v after Redis stopped (DeadAfter %v, lease %v)",
		sinceRenewal, lost.Sub(stopped), e.s.DeadAfter, e.s.LeaseFor())
	if sinceRenewal < e.s.LeaseFor() || sinceRenewal >= e.s.DeadAfter {
		t.Errorf("lease lost %v after the last renewal, want in [%v, %v)", sinceRenewal, e.s.LeaseFor(), e.s.DeadAfter)
	}
	if cause := context.Cause(lease); !errors.Is(cause, ErrLeaseLost) {
		t.Errorf("cause %v, want ErrLeaseLost", cause)
	}

	e.srv.Restart() // empty dataset: the registration is gone
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fresh, err := m.WaitLease(ctx)
	if err != nil {
		t.Fatalf("WaitLease after the restart: %v", err)
	}
	if fresh == lease || fresh.Err() != nil {
		t.Fatal("WaitLease returned the lost lease")
	}
	if got := e.rdb.Get(ctx, keyspace.Replica(e.s.Prefix, "r1")).Val(); got != m.token {
		t.Errorf("replica key %q after re-registration, want the new token", got)
	}
	if owners, err := e.rdb.HGetAll(ctx, keyspace.Owners(e.s.Prefix)).Result(); err != nil || owners["q/taken/r1"] != "r1" {
		t.Errorf("owners after re-registration: %v %v", owners, err)
	}
	logs := e.logs.String()
	for _, w := range []string{"redis unavailable", "redis available again", "lease lost: work must stop", "registered again"} {
		if n := strings.Count(logs, w); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", w, n, logs)
		}
	}
}

// TestLeaseLostOnTakeover: a heartbeat notices that the key was deleted
// (then registers again) or taken by another registration (then Run
// fails: this process is the stale one). It is the heartbeat that ends
// the lease, reading the key (noticed), not the lease's own timer, which
// would end it a little later without a look at Redis: no bound on the
// time, which load could break.
func TestLeaseLostOnTakeover(t *testing.T) {
	t.Parallel()
	// The cause a heartbeat gives (lease.go); the timer's says "no
	// heartbeat renewal succeeded".
	const noticed = "the heartbeat key expired or holds another registration"
	t.Run("deleted", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		ctx := context.Background()
		m := e.register("r1", Options{})
		run(t, m)
		lease := m.Lease()
		key := keyspace.Replica(e.s.Prefix, "r1")
		if err := e.rdb.Del(ctx, key).Err(); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		lost := waitDone(t, lease, 10*e.s.DeadAfter, "lease lost after the key was deleted")
		t.Logf("noticed %v after the deletion (heartbeat interval %v)", lost.Sub(deleted), e.s.HeartbeatInterval)
		if cause := context.Cause(lease); !errors.Is(cause, ErrLeaseLost) || !strings.Contains(cause.Error(), noticed) {
			t.Errorf("cause %v, want a heartbeat's ErrLeaseLost", cause)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := m.WaitLease(wctx); err != nil {
			t.Fatalf("no new lease: %v", err)
		}
		if got := e.rdb.Get(ctx, key).Val(); got != m.token {
			t.Errorf("key %q, want the new token", got)
		}
	})
	t.Run("taken", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		ctx := context.Background()
		m := e.register("r1", Options{})
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- m.Run(rctx) }()
		lease := m.Lease()
		if err := e.rdb.Set(ctx, keyspace.Replica(e.s.Prefix, "r1"), "someone-else", 10*e.s.DeadAfter).Err(); err != nil {
			t.Fatal(err)
		}
		taken := time.Now()
		lost := waitDone(t, lease, 10*e.s.DeadAfter, "lease lost after the key was taken")
		t.Logf("noticed %v after the takeover (heartbeat interval %v)", lost.Sub(taken), e.s.HeartbeatInterval)
		if cause := context.Cause(lease); !errors.Is(cause, ErrLeaseLost) || !strings.Contains(cause.Error(), noticed) {
			t.Errorf("cause %v, want a heartbeat's ErrLeaseLost", cause)
		}
		select {
		case err := <-done:
			if !errors.Is(err, ErrIDInUse) {
				t.Errorf("Run: %v, want ErrIDInUse", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return")
		}
		if _, err := m.WaitLease(ctx); !errors.Is(err, ErrStopped) {
			t.Errorf("WaitLease: %v, want ErrStopped", err)
		}
		if err := m.Deregister(ctx); !errors.Is(err, ErrNotRegistered) {
			t.Errorf("Deregister of a taken registration: %v, want ErrNotRegistered", err)
		}
		if got := e.rdb.Get(ctx, keyspace.Replica(e.s.Prefix, "r1")).Val(); got != "someone-else" {
			t.Errorf("the other registration was touched: %q", got)
		}
	})
}

func TestWaitLeaseHonoursContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := e.register("r1", Options{})
	// No Run: the lease runs out and nobody registers again.
	waitDone(t, m.Lease(), time.Second, "lease without heartbeat ends")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.WaitLease(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitLease: %v, want the context's error", err)
	}
}

// busyScript holds Redis for ARGV[1] microseconds, as a slow script of a
// replica's own (the set-aside of a huge event) does.
var busyScript = redis.NewScript(`
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
  t = redis.call('TIME')
until t[1] * 1000000 + t[2] - start >= tonumber(ARGV[1])
return 1`)

// TestLeaseSurvivesSlowScripts: scripts of two fifths of the lease each, 20
// ms apart (a replica's work between its scripts), for three leases, from
// another connection: every heartbeat waits behind one of them (or two,
// losing the race for the gap) for its turn, gets it in time, and the
// lease holds. A heartbeat given up after one interval, as before, lost
// the lease in 5 runs out of 5.
func TestLeaseSurvivesSlowScripts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.s.DeadAfter = 1200 * time.Millisecond // lease 1 s, heartbeats every 100 ms
	m := e.register("r1", Options{}, "q/taken/r1")
	run(t, m)
	lease := m.Lease()
	blocker := e.srv.Client()
	ctx := context.Background()
	each := e.s.LeaseFor() * 2 / 5
	start := time.Now()
	for time.Since(start) < 3*e.s.LeaseFor() {
		if err := busyScript.Run(ctx, blocker, nil, each.Microseconds()).Err(); err != nil {
			t.Fatal(err)
		}
		<-time.After(20 * time.Millisecond) // the load's shape, not a wait for anything
	}
	if err := context.Cause(lease); err != nil {
		t.Fatalf("lease lost behind scripts of %v each: %v\n%s", each, err, e.logs.String())
	}
	if n := e.rdb.Exists(ctx, keyspace.Replica(e.s.Prefix, "r1")).Val(); n != 1 {
		t.Fatal("the registration expired")
	}
}
