package systest

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
	"github.com/resc-go/resc/membership"
)

// The chaos suite (issue 3) runs clusters of real resc processes on a real
// redis-server, kills, stops and restarts them while events flow, and
// checks that every event's task is produced exactly once: the rules have
// no dedup set, so a duplicate shows in the task queue.

// Names of the chaos configuration (procConfig's queues).
const (
	chaosInput   = "in"
	chaosTaken   = "in/taken"
	chaosChannel = "chaos-events" // listener_channel
)

// chaosConfig is procConfig publishing resc's listener messages on
// chaosChannel, with the watcher keys watcherKeys (e.g. "concurrency: 2")
// and the cluster keys timings ("" for the defaults).
func chaosConfig(t *testing.T, redisURL, fetchBase, watcherKeys, timings string) string {
	t.Helper()
	top := "listener_channel: " + chaosChannel
	if timings != "" {
		top += "\n  cluster: {" + timings + "}"
	}
	return testutil.WriteFile(t, "chaos.hjson", procConfigText(redisURL, fetchBase, top, watcherKeys))
}

// taskOf is where the chaos configuration pushes the task of event.
func taskOf(event string) (queue, task string) {
	if id, ok := strings.CutPrefix(event, "prod/"); ok {
		return "made/todo", "made/" + id + "/widget"
	}
	id, _ := strings.CutPrefix(event, "acq/")
	return "trt/todo", "trt/" + id
}

// chaosAPI is the service of the fetch rule: /p/N answers {"name":
// "widget"} after a random delay of up to maxDelay, except while N is
// held: then it answers once N is released, or returns without an answer
// when the client goes away (a killed replica).
type chaosAPI struct {
	*httptest.Server
	maxDelay time.Duration

	mu   sync.Mutex
	held map[string]chan struct{} // closed when released
}

func newChaosAPI(t *testing.T, maxDelay time.Duration) *chaosAPI {
	a := &chaosAPI{maxDelay: maxDelay, held: map[string]chan struct{}{}}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	t.Cleanup(a.releaseAll) // before Close, which waits for the handlers
	return a
}

func (a *chaosAPI) serve(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/p/")
	a.mu.Lock()
	held := a.held[id]
	a.mu.Unlock()
	var due <-chan time.Time
	if held == nil && a.maxDelay > 0 {
		// The latency of a real service, so that kills find events in flight.
		timer := time.NewTimer(rand.N(a.maxDelay))
		defer timer.Stop()
		due = timer.C
	}
	if held != nil || due != nil {
		select { // a nil channel never fires
		case <-held:
		case <-due:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"name": "widget"}`)
}

// hold makes the fetches of ids wait until they are released.
func (a *chaosAPI) hold(ids ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		if a.held[id] == nil {
			a.held[id] = make(chan struct{})
		}
	}
}

// release lets the held and future fetches of ids answer.
func (a *chaosAPI) release(ids ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		if ch := a.held[id]; ch != nil {
			close(ch)
			delete(a.held, id)
		}
	}
}

func (a *chaosAPI) releaseAll() {
	a.mu.Lock()
	ids := make([]string, 0, len(a.held))
	for id := range a.held {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	a.release(ids...)
}

// doneTracker follows the listener channel: when each event was committed
// (its DONE message, published by the commit script itself) and how many
// times.
type doneTracker struct {
	mu    sync.Mutex
	at    map[string]time.Time
	count map[string]int
	err   error // the subscription broke: messages may be missing
}

// trackDone subscribes to chaosChannel before returning, so that no commit
// made afterwards is missed.
func trackDone(t *testing.T, rdb *redis.Client) *doneTracker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ps := rdb.Subscribe(ctx, chaosChannel)
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		cancel()
		t.Fatalf("subscribing to %s: %v", chaosChannel, err)
	}
	d := &doneTracker{at: map[string]time.Time{}, count: map[string]int{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		prefix := chaosTaken + " DONE "
		for {
			msg, err := ps.ReceiveMessage(ctx)
			now := time.Now()
			if err != nil {
				if ctx.Err() == nil {
					d.mu.Lock()
					d.err = err
					d.mu.Unlock()
				}
				return
			}
			if ev, ok := strings.CutPrefix(msg.Payload, prefix); ok {
				d.mu.Lock()
				if d.count[ev] == 0 {
					d.at[ev] = now
				}
				d.count[ev]++
				d.mu.Unlock()
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		_ = ps.Close() // ends a ReceiveMessage under way
		wg.Wait()
	})
	return d
}

// pending returns how many of events have not been committed yet, and one
// of them; an error when the subscription broke.
func (d *doneTracker) pending(events []string) (n int, example string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ev := range events {
		if d.count[ev] == 0 {
			if n == 0 {
				example = ev
			}
			n++
		}
	}
	return n, example, d.err
}

// committed returns how many distinct events were committed so far.
func (d *doneTracker) committed() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.count)
}

// committedAt returns when event was first committed.
func (d *doneTracker) committedAt(event string) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.at[event]
	return at, ok
}

// commits returns how many times event was committed.
func (d *doneTracker) commits(event string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count[event]
}

// chaosCluster is a redis-server, a chaosAPI, a listener and the resc
// replicas of one chaos scenario. Its methods are for the test goroutine,
// except recoveryTime and those of its fields that say otherwise.
type chaosCluster struct {
	t    *testing.T
	rdb  *redis.Client // safe for concurrent use
	api  *chaosAPI     // safe for concurrent use
	done *doneTracker  // safe for concurrent use
	cfg  string
	env  []string

	live    map[string]*proctest.Process // the running replicas by id
	all     []member                     // every replica started, in order
	ids     int                          // for newID
	eventNo int                          // for newEvent
}

// member is a resc process and its replica id.
type member struct {
	id string
	p  *proctest.Process
}

// newChaosCluster starts a redis-server, the API (answering within
// apiDelay) and the listener, and writes the configuration; it starts no
// replica. env is added to the replicas' environment (e.g. RESC_LOG=warn).
func newChaosCluster(t *testing.T, apiDelay time.Duration, watcherKeys, timings string, env ...string) *chaosCluster {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client()
	api := newChaosAPI(t, apiDelay)
	return &chaosCluster{
		t:    t,
		rdb:  rdb,
		api:  api,
		done: trackDone(t, rdb),
		cfg:  chaosConfig(t, srv.URL(), api.URL, watcherKeys, timings),
		env:  env,
		live: map[string]*proctest.Process{},
	}
}

// newID returns a replica id never used in this cluster.
func (c *chaosCluster) newID() string {
	c.ids++
	return "r" + strconv.Itoa(c.ids)
}

// newEvent returns a number for an event never pushed in this cluster.
func (c *chaosCluster) newEvent() string {
	c.eventNo++
	return strconv.Itoa(c.eventNo)
}

// start starts replica id and waits until it has joined the cluster (a
// restart under the id of a killed replica first waits for its old
// registration to expire).
func (c *chaosCluster) start(id string) *proctest.Process {
	c.t.Helper()
	if c.live[id] != nil {
		c.t.Fatalf("replica %s is already running", id)
	}
	p := proctest.Start(c.t, c.env, "run", "--replica-id", id, "--http-addr", "off", c.cfg)
	p.WaitLog(20*time.Second, "resc-go started")
	c.live[id] = p
	c.all = append(c.all, member{id, p})
	return p
}

// stop sends SIGTERM to replica id and checks that it exits 0.
func (c *chaosCluster) stop(id string) {
	c.t.Helper()
	p := c.live[id]
	delete(c.live, id)
	p.Stop(20 * time.Second)
}

// stopAll stops every running replica, in id order.
func (c *chaosCluster) stopAll() {
	c.t.Helper()
	for _, id := range c.liveIDs() {
		c.stop(id)
	}
}

// kill kills the replicas ids with SIGKILL, all at once, waits for them to
// die and returns when the first signal was sent and what each held: its
// taken list, which nobody but the leader changes any more, as events
// (without the crash replay stamps of its entries).
func (c *chaosCluster) kill(ids ...string) (at time.Time, held map[string][]string) {
	c.t.Helper()
	at = time.Now()
	for _, id := range ids {
		c.live[id].Kill()
	}
	held = map[string][]string{}
	for _, id := range ids {
		c.live[id].Wait(10 * time.Second)
		delete(c.live, id)
		held[id] = heldEvents(c.t, c.rdb, keyspace.TakenList(chaosTaken, id))
	}
	return at, held
}

// heldEvents returns the events of the entries of list, without the crash
// replay stamps they may carry.
func heldEvents(t *testing.T, rdb *redis.Client, list string) []string {
	t.Helper()
	entries := testutil.List(t, rdb, list)
	for i, e := range entries {
		entries[i], _ = keyspace.Unstamp(e)
	}
	return entries
}

// liveIDs returns the ids of the running replicas, sorted.
func (c *chaosCluster) liveIDs() []string {
	ids := make([]string, 0, len(c.live))
	for id := range c.live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// leader waits until a running replica holds the leader lock and returns
// its id.
func (c *chaosCluster) leader() string {
	c.t.Helper()
	var id string
	c.eventually(20*time.Second, "a running replica leading", func() (bool, string) {
		var err error
		id, err = membership.Leader(c.t.Context(), c.rdb, "")
		return err == nil && c.live[id] != nil, fmt.Sprintf("leader %q (err %v), running %q", id, err, c.liveIDs())
	})
	return id
}

// push LPUSHes events to the input queue.
func (c *chaosCluster) push(events ...string) {
	c.t.Helper()
	for _, ev := range events {
		if err := c.rdb.LPush(c.t.Context(), chaosInput, ev).Err(); err != nil {
			c.t.Fatalf("LPUSH %s %s: %v", chaosInput, ev, err)
		}
	}
}

// logs returns the stderr of every replica started, each headed by its id,
// cut to its last lines.
func (c *chaosCluster) logs(lines int) string {
	var b strings.Builder
	for _, r := range c.all {
		l := strings.Split(strings.TrimRight(r.p.Stderr(), "\n"), "\n")
		fmt.Fprintf(&b, "--- %s (last %d of %d lines):\n%s\n", r.id, min(lines, len(l)), len(l), strings.Join(l[max(0, len(l)-lines):], "\n"))
	}
	return b.String()
}

// anyLog reports which replicas, started at any time, logged s.
func (c *chaosCluster) anyLog(s string) []string {
	var ids []string
	for _, r := range c.all {
		if strings.Contains(r.p.Stderr(), s) {
			ids = append(ids, r.id)
		}
	}
	return ids
}

// holdOn pushes events whose fetch is held, one at a time, each once the
// previous one was taken, until replica victim holds want of them (the
// others went to other replicas), and returns their numbers. Events of a
// replica are never committed while held: what it holds stays in its
// taken list until it is killed.
func (c *chaosCluster) holdOn(victim string, want int) []string {
	c.t.Helper()
	taken := keyspace.TakenList(chaosTaken, victim)
	var ids []string
	for range 50 {
		id := c.newEvent()
		c.api.hold(id)
		ids = append(ids, id)
		c.push("prod/" + id)
		c.eventually(10*time.Second, "the event taken", listIs(c.t, c.rdb, chaosInput))
		if len(testutil.List(c.t, c.rdb, taken)) >= want {
			return ids
		}
	}
	c.t.Fatalf("%s took fewer than %d of %d events pushed one at a time", victim, want, len(ids))
	return nil
}

// atRandom waits a random time under d, so that what the test does next
// (a kill, a start) comes at a random moment of the replicas' periodic work
// (heartbeats, leader scans) instead of in step with the test's previous
// step. It is no wait for a result.
func atRandom(d time.Duration) {
	<-time.After(rand.N(d))
}

// logLines returns the lines of p's stderr that contain every one of
// parts.
func logLines(p *proctest.Process, parts ...string) []string {
	var lines []string
	for l := range strings.Lines(p.Stderr()) {
		if !slices.ContainsFunc(parts, func(s string) bool { return !strings.Contains(l, s) }) {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return lines
}

// eventually polls cond until it holds, failing the test with what, cond's
// last description and the replicas' logs after timeout.
func (c *chaosCluster) eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	c.t.Helper()
	if ok, state := testutil.Poll(timeout, cond); !ok {
		c.t.Fatalf("after %v: want %s; got %s\n%s", timeout, what, state, c.logs(40))
	}
}

// recoveryTime polls, up to timeout, until the events a killed replica held
// are back in play: each committed by a live replica (so in no taken list
// any more) and, when taken is not "", that taken list empty. It returns
// the time since at, the moment of the kill. Safe for concurrent use: it
// fails nothing itself.
func (c *chaosCluster) recoveryTime(at time.Time, taken string, held []string, timeout time.Duration) (time.Duration, error) {
	ok, state := testutil.Poll(timeout, func() (bool, string) {
		n, example, err := c.done.pending(held)
		switch {
		case err != nil:
			return false, "the listener subscription broke: " + err.Error()
		case n > 0:
			return false, fmt.Sprintf("%d of the %d events held not committed (e.g. %q)", n, len(held), example)
		case taken == "":
			return true, ""
		}
		left, err := c.rdb.LLen(context.Background(), taken).Result()
		return err == nil && left == 0, fmt.Sprintf("%s holds %d events (err %v)", taken, left, err)
	})
	if !ok {
		return 0, fmt.Errorf("not recovered %v after the kill: %s", time.Since(at).Round(time.Millisecond), state)
	}
	return time.Since(at), nil
}

// inFlight describes what is still in the input queue, the taken lists and
// the delay schedule; "" when nothing is.
func (c *chaosCluster) inFlight() string {
	ctx := c.t.Context()
	var parts []string
	if n := c.rdb.LLen(ctx, chaosInput).Val(); n > 0 {
		parts = append(parts, fmt.Sprintf("%d in %s", n, chaosInput))
	}
	iter := c.rdb.Scan(ctx, 0, chaosTaken+"/*", 1000).Iterator()
	for iter.Next(ctx) {
		if n := c.rdb.LLen(ctx, iter.Val()).Val(); n > 0 {
			parts = append(parts, fmt.Sprintf("%d in %s", n, iter.Val()))
		}
	}
	if err := iter.Err(); err != nil {
		parts = append(parts, "SCAN: "+err.Error())
	}
	sched := keyspace.DelaySchedule(config.DefaultKeyPrefix, chaosInput)
	if n := c.rdb.ZCard(ctx, sched).Val(); n > 0 {
		parts = append(parts, fmt.Sprintf("%d in %s", n, sched))
	}
	return strings.Join(parts, ", ")
}

// deadEntries returns the dead-letter list of the input queue, decoded.
func (c *chaosCluster) deadEntries() []deadletter.Entry {
	c.t.Helper()
	var entries []deadletter.Entry
	for _, raw := range testutil.List(c.t, c.rdb, keyspace.DeadList(chaosInput)) {
		e, err := deadletter.Decode(raw)
		if err != nil {
			c.t.Fatal(err)
		}
		entries = append(entries, *e)
	}
	return entries
}

// settle waits, up to timeout, until every one of events is committed or,
// for those of wantDead, dead-lettered, and nothing is left in the input
// queue, a taken list or the delay schedule. Then it checks that each
// committed event's task is in its queue exactly once, that no other task
// is there, and that the dead-letter list holds wantDead only. It returns
// how many events were lost (no task, not dead-lettered as wanted) and
// duplicated (a task more than once), and fails the test when either is
// not zero or anything else is wrong.
func (c *chaosCluster) settle(events, wantDead []string, timeout time.Duration) (lost, duplicated int) {
	c.t.Helper()
	t := c.t
	dead := map[string]bool{}
	for _, ev := range wantDead {
		dead[ev] = true
	}
	var handled []string
	for _, ev := range events {
		if !dead[ev] {
			handled = append(handled, ev)
		}
	}
	settled, state := testutil.Poll(timeout, func() (bool, string) {
		n, example, err := c.done.pending(handled)
		busy := c.inFlight()
		return n == 0 && busy == "" && err == nil,
			fmt.Sprintf("%d events not committed (e.g. %q), listener error %v; in flight: %s", n, example, err, busy)
	})
	if !settled {
		t.Errorf("not settled after %v: %s\n%s", timeout, state, c.logs(20))
	}

	tasks := map[string]int{}
	for _, q := range []string{"trt/todo", "made/todo"} {
		for _, task := range testutil.List(t, c.rdb, q) {
			tasks[q+" "+task]++
		}
	}
	var lostEx, dupEx []string
	for _, ev := range events {
		q, task := taskOf(ev)
		key := q + " " + task
		n := tasks[key]
		delete(tasks, key)
		switch {
		case dead[ev] && n > 0:
			t.Errorf("event %q is dead-lettered as wanted, but its task %q was pushed %d time(s)", ev, task, n)
		case !dead[ev] && n == 0:
			lost++
			lostEx = append(lostEx, ev)
		case n > 1:
			duplicated++
			dupEx = append(dupEx, fmt.Sprintf("%s x%d", task, n))
		}
		if k := c.done.commits(ev); k > 1 {
			t.Errorf("event %q committed %d times (listener DONE messages)", ev, k)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d events LOST (no task), e.g. %q", lost, len(events), lostEx[:min(5, len(lostEx))])
	}
	if duplicated > 0 {
		t.Errorf("%d of %d events DUPLICATED, e.g. %q", duplicated, len(events), dupEx[:min(5, len(dupEx))])
	}
	if len(tasks) > 0 {
		t.Errorf("%d tasks of no event pushed: %v", len(tasks), tasks)
	}
	var gotDead []string
	for _, e := range c.deadEntries() {
		gotDead = append(gotDead, e.Event)
		if !dead[e.Event] {
			t.Errorf("event %q dead-lettered: %s (replica %s)", e.Event, e.Reason, e.Replica)
		}
	}
	slices.Sort(gotDead)
	want := slices.Sorted(slices.Values(wantDead))
	if !slices.Equal(gotDead, want) {
		t.Errorf("dead-letter list holds %q, want %q", gotDead, want)
	}
	if busy := c.inFlight(); busy != "" {
		t.Errorf("left in flight: %s", busy)
	}
	return lost, duplicated
}

// producer pushes events to the input queue at a steady pace, alternately
// acq/N and prod/N, until halted, and remembers when it pushed each.
type producer struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	events []string
	pushed map[string]time.Time
	err    error
}

// startProducer pushes one event every period, numbered from first up.
func startProducer(t *testing.T, rdb *redis.Client, period time.Duration, first int) *producer {
	p := &producer{stop: make(chan struct{}), pushed: map[string]time.Time{}}
	p.wg.Go(func() {
		tick := time.NewTicker(period)
		defer tick.Stop()
		for n := first; ; n++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			ev := "acq/" + strconv.Itoa(n)
			if n%2 == 1 {
				ev = "prod/" + strconv.Itoa(n)
			}
			at := time.Now()
			err := rdb.LPush(context.Background(), chaosInput, ev).Err()
			p.mu.Lock()
			p.events = append(p.events, ev) // even on an error: it may have been pushed
			p.pushed[ev] = at
			p.err = err
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	})
	t.Cleanup(func() { p.halt(t) })
	return p
}

// halt stops the producer and returns the events it pushed, in order.
func (p *producer) halt(t *testing.T) []string {
	t.Helper()
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		t.Fatalf("producer: %v", p.err)
	}
	return slices.Clone(p.events)
}

// pushedAt returns when ev was pushed.
func (p *producer) pushedAt(ev string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pushed[ev]
}

// spread summarises durations: p50 and p99 by nearest rank, and the max.
type spread struct {
	n             int
	p50, p99, max time.Duration
}

func spreadOf(ds []time.Duration) spread {
	if len(ds) == 0 {
		return spread{}
	}
	s := slices.Sorted(slices.Values(ds))
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return spread{n: len(s), p50: rank(0.50), p99: rank(0.99), max: s[len(s)-1]}
}

func (s spread) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", s.n, r(s.p50), r(s.p99), r(s.max))
}

// envSetting is the value of the environment variable name as parse reads
// it, def when the variable is unset; a value parse refuses or that is not
// positive fails the test, which says it wants want.
func envSetting[T int | time.Duration](t *testing.T, name string, def T, parse func(string) (T, error), want string) T {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	x, err := parse(v)
	if err != nil || x <= 0 {
		t.Fatalf("%s=%q: want %s", name, v, want)
	}
	return x
}
