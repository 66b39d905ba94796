package membership

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/testutil"
)

// candidate is one elector run by a test, with a callback that holds its
// leadership until the leadership context is done.
type candidate struct {
	id      string
	el      *Elector
	cancel  context.CancelFunc
	done    chan error
	leads   atomic.Int32 // times it was handed leadership
	mu      sync.Mutex
	current context.Context // the latest leadership context
}

// race counts the callbacks running at once among a test's candidates.
type race struct {
	active, most atomic.Int32
}

func (e *env) candidate(id string, r *race) *candidate {
	e.t.Helper()
	el, err := NewElector(e.rdb, id, Options{Settings: e.s, Logger: e.log})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{id: id, el: el, cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- el.Run(ctx, func(lctx context.Context) {
			n := r.active.Add(1)
			for m := r.most.Load(); n > m && !r.most.CompareAndSwap(m, n); m = r.most.Load() {
			}
			c.mu.Lock()
			c.current = lctx
			c.mu.Unlock()
			c.leads.Add(1)
			<-lctx.Done()
			r.active.Add(-1)
		})
	}()
	e.t.Cleanup(func() { c.stop(e.t) })
	return c
}

// stop cancels Run's context and waits for Run to return.
func (c *candidate) stop(t *testing.T) {
	c.cancel()
	select {
	case err, ok := <-c.done:
		if ok && err != nil {
			t.Errorf("%s: Run: %v", c.id, err)
		}
		if ok {
			close(c.done)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("%s: Run did not return within 5s", c.id)
	}
}

func (c *candidate) leadership() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

func leaders(cs []*candidate) []*candidate {
	var out []*candidate
	for _, c := range cs {
		if c.el.IsLeader() {
			out = append(out, c)
		}
	}
	return out
}

func TestNewElectorRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := NewElector(e.rdb, "", Options{Settings: e.s, Logger: e.log}); err == nil {
		t.Error("no id: no error")
	}
	bad := e.s
	bad.LeaderTTL = -1
	if _, err := NewElector(e.rdb, "r1", Options{Settings: bad, Logger: e.log}); err == nil {
		t.Error("bad settings: no error")
	}
}

// TestOneLeaderOfThree: exactly one of three electors leads, and keeps
// leading over several extends; when its context is cancelled it releases
// the lock before Run returns, and another takes over.
//
// No assertion here bounds a wall-clock time (the test once failed under
// load on "took over within LeaderTTL + HeartbeatInterval"): the takeover
// is checked by its cause, the release seen in Redis the moment Run
// returned. The time limits of the waits only catch a hung test.
func TestOneLeaderOfThree(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A lock of 1.5 s, extended every 0.5 s: the leader keeps it through a
	// stall of up to a second (the test counts extends, not time).
	e.s.LeaderTTL = 1500 * time.Millisecond
	ctx := context.Background()
	r := &race{}
	var cs []*candidate
	for i := range 3 {
		cs = append(cs, e.candidate(fmt.Sprintf("r%d", i+1), r))
	}
	var first *candidate
	testutil.Eventually(t, "one leader, its callback running", func() bool {
		ls := leaders(cs)
		if len(ls) == 1 && ls[0].leadership() != nil {
			first = ls[0]
		}
		return first != nil
	})

	// Leadership holds, and stays single, over two extends, seen as the
	// lock's TTL going up again.
	key := keyspace.Leader(e.s.Prefix)
	extends, last := 0, e.rdb.PTTL(ctx, key).Val()
	testutil.Eventually(t, "two extends of the lock", func() bool {
		if ls := leaders(cs); len(ls) != 1 || ls[0] != first {
			t.Fatalf("leaders %v, want only %s", ls, first.id)
		}
		if d := e.rdb.PTTL(ctx, key).Val(); d > last {
			extends++
			last = d
		} else {
			last = min(last, d)
		}
		return extends >= 2
	})
	if got, err := Leader(ctx, e.rdb, e.s.Prefix); err != nil || got != first.id {
		t.Errorf("Leader() = %q, %v; want %s", got, err, first.id)
	}
	if n := first.leads.Load(); n != 1 {
		t.Errorf("the leader was handed leadership %d times, want once", n)
	}

	lctx := first.leadership()
	first.stop(t)
	if lctx.Err() == nil {
		t.Error("the stopped leader's leadership context is live")
	}
	// Released before Run returned: the lock is gone or another's, so the
	// takeover does not wait for it to expire.
	if got, err := Leader(ctx, e.rdb, e.s.Prefix); err != nil || got == first.id {
		t.Errorf("Leader() right after the leader's Run returned = %q, %v; want the lock released", got, err)
	}
	var next *candidate
	testutil.Eventually(t, "another leader", func() bool {
		ls := leaders(cs)
		if len(ls) == 1 && ls[0] != first {
			next = ls[0]
		}
		return next != nil
	})
	if got, err := Leader(ctx, e.rdb, e.s.Prefix); err != nil || got != next.id {
		t.Errorf("Leader() = %q, %v; want %s", got, err, next.id)
	}
	if m := r.most.Load(); m != 1 {
		t.Errorf("%d leader callbacks ran at once", m)
	}

	// The last ones stop: the lock is released, Leader() reports none.
	for _, c := range cs {
		c.stop(t)
	}
	if got, err := Leader(ctx, e.rdb, e.s.Prefix); err != nil || got != "" {
		t.Errorf("Leader() after every elector stopped = %q, %v; want none", got, err)
	}
}

// TestLeaderThatDiedWithoutReleasing: a lock left by a crashed leader is
// taken over once it expires, and not before: when the elector hands out
// leadership, the crashed leader's lock must be gone (it cannot come back,
// so finding it then means the elector claimed a lock it did not hold).
func TestLeaderThatDiedWithoutReleasing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key := keyspace.Leader(e.s.Prefix)
	if err := e.rdb.Set(ctx, key, "crashed#x", e.s.LeaderTTL).Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := Leader(ctx, e.rdb, e.s.Prefix); got != "crashed" {
		t.Errorf("Leader() = %q, want crashed", got)
	}
	el, err := NewElector(e.rdb, "r1", Options{Settings: e.s, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	locks := make(chan string, 1) // the lock as the first leadership found it
	done := make(chan error, 1)
	go func() {
		done <- el.Run(ctx, func(lctx context.Context) {
			v, err := e.rdb.Get(ctx, key).Result()
			if err != nil {
				v = "(" + err.Error() + ")"
			}
			select {
			case locks <- v:
			default:
			}
			<-lctx.Done()
		})
	}()
	select {
	case v := <-locks:
		// r1's, or already expired after a stall; never the crashed one.
		if strings.HasPrefix(v, "crashed#") {
			t.Errorf("the lock when leadership began: %q, the crashed leader's", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("never led after the old lock expired")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestLeadershipLost: a leader whose extend is refused (the lock was taken)
// or fails (Redis stopped) has its leadership context cancelled, well
// before the lock could expire. Each case is checked by the cause of the
// cancellation, not by how long it took: the refused extend ends it at
// once, and with Redis gone the lock's own validity, which ends before the
// lock's TTL at Redis (redsync counts it from the start of the call that
// set the lock, minus a drift allowance).
func TestLeadershipLost(t *testing.T) {
	t.Parallel()
	t.Run("lock taken", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		// Extends every 0.5 s, a validity of 1.5 s: the refused extend
		// comes first unless a timer is late by a second.
		e.s.LeaderTTL = 1500 * time.Millisecond
		ctx := context.Background()
		c := e.candidate("r1", &race{})
		testutil.Eventually(t, "leads", func() bool { return c.leadership() != nil })
		lctx := c.leadership()
		key := keyspace.Leader(e.s.Prefix)
		if err := e.rdb.Del(ctx, key).Err(); err != nil {
			t.Fatal(err)
		}
		if err := e.rdb.Set(ctx, key, "other#y", 0).Err(); err != nil {
			t.Fatal(err)
		}
		waitDone(t, lctx, 10*time.Second, "leadership lost after the lock was taken")
		if cause := context.Cause(lctx); !errors.Is(cause, ErrLeadershipLost) || !strings.Contains(cause.Error(), "extending the lock") {
			t.Errorf("cause %v, want ErrLeadershipLost from the refused extend", cause)
		}
		testutil.Eventually(t, "IsLeader turns false", func() bool { return !c.el.IsLeader() })
		// The release did not remove the other's lock.
		if got := e.rdb.Get(ctx, key).Val(); got != "other#y" {
			t.Errorf("lock %q, want the other's", got)
		}
		// Nobody else leads while the other holds it.
		if c.leads.Load() != 1 || c.el.IsLeader() {
			t.Errorf("led again while another holds the lock")
		}
	})
	t.Run("redis stopped", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c := e.candidate("r1", &race{})
		testutil.Eventually(t, "leads", func() bool { return c.leadership() != nil })
		lctx := c.leadership()
		e.srv.Stop()
		waitDone(t, lctx, 10*time.Second, "leadership lost after Redis stopped")
		if cause := context.Cause(lctx); !errors.Is(cause, ErrLeadershipLost) || !strings.Contains(cause.Error(), "validity ran out") {
			t.Errorf("cause %v, want ErrLeadershipLost from the lock's validity", cause)
		}
		if c.el.IsLeader() {
			t.Error("IsLeader after the leadership was lost")
		}
		e.srv.Restart()
		testutil.Eventually(t, "leads again once Redis is back", func() bool { return c.leads.Load() == 2 })
	})
}

// TestLeaderCallbackReturns: a callback that returns ends leadership and
// releases the lock; the elector tries again one interval later.
func TestLeaderCallbackReturns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	el, err := NewElector(e.rdb, "r1", Options{Settings: e.s, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	calls := make(chan context.Context, 10)
	done := make(chan error, 1)
	go func() {
		done <- el.Run(ctx, func(lctx context.Context) { calls <- lctx })
	}()
	first := <-calls
	second := <-calls // the lock was released, and taken again
	if first.Err() == nil || second == first {
		t.Error("a returned callback's leadership context is still live")
	}
	if err := el.Run(ctx, func(context.Context) {}); err == nil {
		t.Error("second Run: no error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestLeaderValue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	key := keyspace.Leader(e.s.Prefix)
	for _, tc := range []struct{ value, want string }{
		{"", ""}, // no key
		{"r1#abc", "r1"},
		{"host#1#abc", "host#1"},
		{"by-hand", "by-hand"},
	} {
		if tc.value != "" {
			if err := e.rdb.Set(ctx, key, tc.value, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := Leader(ctx, e.rdb, e.s.Prefix); err != nil || got != tc.want {
			t.Errorf("value %q: Leader() = %q, %v; want %q", tc.value, got, err, tc.want)
		}
	}
	if v := lockValue("a#b"); len(v) < len("a#b#")+8 {
		t.Errorf("lockValue: %q", v)
	}
}
