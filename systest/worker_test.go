package systest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// The worker tests (issue 14) run real worker processes of package worker
// (systest/testworker) beside a real resc replica, the leader that
// recovers the taken lists of dead workers, on a real redis-server.

// workerFleet is a redis-server, one resc replica making a task "task-<n>"
// in queue "jobs" (dedup set "jobs-set") for each event "task-<n>" of
// "events", and the worker processes the test starts.
type workerFleet struct {
	t     *testing.T
	rdb   redis.UniversalClient
	url   string
	tag   string   // the hash tag of every key on a cluster ("{j}"), else ""
	flags []string // the workers' flags naming Redis and the keys
	bin   string
	resc  *proctest.Process
	procs map[string]*proctest.Process
	ids   int
}

var (
	testWorkerOnce sync.Once
	testWorkerBin  string
	testWorkerErr  error
)

// newWorkerFleet starts Redis and the resc replica (max_replays as given).
func newWorkerFleet(t *testing.T, maxReplays int) *workerFleet {
	t.Helper()
	srv := redistest.Start(t)
	return startWorkerFleet(t, srv.Client(), srv.URL(), "", maxReplays)
}

// newClusterWorkerFleet is newWorkerFleet on a 3-master Redis Cluster,
// every key of the fleet under the hash tag {j}.
func newClusterWorkerFleet(t *testing.T, maxReplays int) *workerFleet {
	t.Helper()
	cl := redistest.StartCluster(t, 3, 0)
	return startWorkerFleet(t, cl.Client(), cl.Seeds(), "{j}", maxReplays)
}

func startWorkerFleet(t *testing.T, rdb redis.UniversalClient, url, tag string, maxReplays int) *workerFleet {
	t.Helper()
	testWorkerOnce.Do(func() {
		// Kept beside the resc binary's build for the whole test process.
		testWorkerBin, testWorkerErr = proctest.BuildPackage(context.Background(), tempBinDir(), "github.com/resc-go/resc/systest/testworker")
	})
	if testWorkerErr != nil {
		t.Fatal(testWorkerErr)
	}
	f := &workerFleet{t: t, rdb: rdb, url: url, tag: tag, bin: testWorkerBin, procs: map[string]*proctest.Process{}}
	f.flags = []string{"-redis-url", url, "-queue", f.k("jobs"), "-set", f.k("jobs-set"), "-done", f.k("done"), "-handled", f.k("handled")}
	if tag != "" {
		f.flags = append(f.flags, "-cluster")
	}
	cfg := testutil.WriteFile(t, "workers.hjson", `{
  redis: { url: "`+url+`" }
  cluster: { heartbeat_interval_ms: 100, dead_after_ms: 1000, leader_ttl_ms: 500, scan_interval_ms: 100, replay_delay_ms: 100, max_replays: `+fmt.Sprint(maxReplays)+` }
  watchers: [ { input_queue: "`+f.k("events")+`", rules: [ { on: "^task-[a-z0-9]+$", make: { queue: "`+f.k("jobs")+`", set: "`+f.k("jobs-set")+`" } } ] } ]
}`)
	f.resc = proctest.Start(t, nil, "run", "--replica-id", "leader", "--http-addr", "off", cfg)
	f.resc.WaitLog(20*time.Second, "leader: replaying")
	return f
}

// k is the fleet's name of key: under its tag on a cluster.
func (f *workerFleet) k(key string) string { return f.tag + key }

// start starts a worker with the extra flags and waits for its
// registration.
func (f *workerFleet) start(flags ...string) (string, *proctest.Process) {
	f.t.Helper()
	f.ids++
	id := fmt.Sprintf("w%d", f.ids)
	p := proctest.StartProgram(f.t, f.bin, nil, append(append([]string{"-id", id}, f.flags...), flags...)...)
	p.WaitLog(20*time.Second, "msg=registered")
	f.procs[id] = p
	return id, p
}

// push pushes the events task-<first>..task-<first+n-1>.
func (f *workerFleet) push(first, n int) []string {
	f.t.Helper()
	var evs []string
	args := make([]any, 0, n)
	for i := first; i < first+n; i++ {
		ev := fmt.Sprintf("task-%d", i)
		evs = append(evs, ev)
		args = append(args, ev)
	}
	if err := f.rdb.LPush(context.Background(), f.k("events"), args...).Err(); err != nil {
		f.t.Fatal(err)
	}
	return evs
}

// counts is how many times each item is in list.
func (f *workerFleet) counts(list string) map[string]int {
	f.t.Helper()
	m := map[string]int{}
	for _, s := range testutil.List(f.t, f.rdb, f.k(list)) {
		m[s]++
	}
	return m
}

// takenLists are the workers' taken lists of "jobs" that exist.
func (f *workerFleet) takenLists() []string {
	f.t.Helper()
	var node redis.Cmdable = f.rdb
	if cc, ok := f.rdb.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(context.Background(), f.k("jobs"))
		if err != nil {
			f.t.Fatal(err)
		}
		node = m
	}
	keys, err := node.Keys(context.Background(), f.k("jobs/taken/*")).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	return keys
}

// settled is true once every task has its done event and nothing is left
// in flight: events, jobs, taken lists, the delay schedule.
func (f *workerFleet) settled(want int) (bool, string) {
	ctx := context.Background()
	done := f.rdb.LLen(ctx, f.k("done")).Val()
	in := f.rdb.LLen(ctx, f.k("events")).Val() + f.rdb.LLen(ctx, f.k("jobs")).Val() + f.rdb.ZCard(ctx, keyspace.DelaySchedule("resc:", f.k("jobs"))).Val()
	taken := f.takenLists()
	return done >= int64(want) && in == 0 && len(taken) == 0,
		fmt.Sprintf("%d done of %d, %d queued or delayed, taken lists %q", done, want, in, taken)
}

// checkExactlyOnce checks that each task of tasks has exactly one done
// event and was handled at least once, and that nothing else is there.
func (f *workerFleet) checkExactlyOnce(tasks []string) (repeated int) {
	f.t.Helper()
	done, handled := f.counts("done"), f.counts("handled")
	for _, task := range tasks {
		if done[task] != 1 {
			f.t.Errorf("task %s: %d done events, want exactly 1", task, done[task])
		}
		if handled[task] < 1 {
			f.t.Errorf("task %s never handled", task)
		}
		repeated += max(handled[task]-1, 0)
		delete(done, task)
	}
	if len(done) != 0 {
		f.t.Errorf("done events of no task: %v", done)
	}
	return repeated
}

// TestWorkersKilledUnderLoad: workers SIGKILLed while tasks flow lose
// nothing: the leader replays their taken lists, every task gets exactly
// one done event, handler panics are retried, no taken list is left.
func TestWorkersKilledUnderLoad(t *testing.T) {
	t.Parallel()
	workersKilledUnderLoad(t, newWorkerFleet(t, 100))
}

// TestWorkersKilledUnderLoadOnCluster is TestWorkersKilledUnderLoad on a
// 3-master Redis Cluster: the workers' scripts fence on their per-queue
// fence, in the queue's slot, and the leader deletes a dead worker's
// fence in the script that replays its taken list.
func TestWorkersKilledUnderLoadOnCluster(t *testing.T) {
	t.Parallel()
	workersKilledUnderLoad(t, newClusterWorkerFleet(t, 100))
}

func workersKilledUnderLoad(t *testing.T, f *workerFleet) {
	flags := []string{"-work", "20ms", "-panic-every", "97"}
	var live []string
	for range 3 {
		id, _ := f.start(flags...)
		live = append(live, id)
	}
	const total, kills = 3000, 6
	var tasks []string
	pushed := 0
	for k := range kills {
		tasks = append(tasks, f.push(pushed, total/kills)...)
		pushed += total / kills
		// Let the workers get into the batch, then kill one at a random
		// instant of it: this paces the load, it synchronises nothing.
		time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
		victim := live[k%len(live)]
		held := f.rdb.LLen(context.Background(), f.k("jobs/taken/"+victim)).Val()
		f.procs[victim].Kill()
		f.procs[victim].Wait(10 * time.Second)
		t.Logf("killed %s holding %d tasks", victim, held)
		id, _ := f.start(flags...)
		live[k%len(live)] = id
	}
	f.resc.Eventually(60*time.Second, "every task done, nothing in flight", func() (bool, string) { return f.settled(total) })
	repeated := f.checkExactlyOnce(tasks)
	if n := f.rdb.LLen(context.Background(), f.k("jobs/dead")).Val(); n != 0 {
		t.Errorf("%d tasks dead-lettered, want none: %q", n, testutil.List(t, f.rdb, f.k("jobs/dead")))
	}
	replays := strings.Count(f.resc.Stderr(), "replayed the taken list of a dead worker")
	if replays == 0 {
		t.Errorf("the leader replayed no dead worker's taken list:\n%s", f.resc.Stderr())
	}
	t.Logf("%d tasks, %d kills: %d taken lists replayed by the leader, %d tasks handled more than once (at-least-once), 0 done events repeated", total, kills, replays, repeated)
	for _, id := range live {
		f.procs[id].Stop(20 * time.Second)
	}
}

// TestWorkerZombieFenced: a worker paused (SIGSTOP) in a task past its
// dead-after is presumed dead; the leader replays its task, another
// worker completes it; resumed, the zombie finishes its handler but
// completes nothing: one done event.
func TestWorkerZombieFenced(t *testing.T) {
	t.Parallel()
	workerZombieFenced(t, newWorkerFleet(t, 100))
}

// TestWorkerZombieFencedOnCluster is TestWorkerZombieFenced on a Redis
// Cluster: the zombie's fence, deleted by the leader's replay, refuses
// its completion.
func TestWorkerZombieFencedOnCluster(t *testing.T) {
	t.Parallel()
	workerZombieFenced(t, newClusterWorkerFleet(t, 100))
}

func workerZombieFenced(t *testing.T, f *workerFleet) {
	zid, zombie := f.start("-slow", "task-zombie", "-slow-for", "1500ms")
	f.push(0, 1)
	f.rdb.LPush(context.Background(), f.k("events"), "task-zombie")
	zombie.WaitLog(10*time.Second, "slow task started")
	zombie.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	f.resc.Eventually(10*time.Second, "the zombie's taken list replayed", func() (bool, string) {
		n := f.rdb.LLen(context.Background(), f.k("jobs/taken/"+zid)).Val()
		return n == 0, fmt.Sprintf("%d tasks in it", n)
	})
	t.Logf("replayed %v after SIGSTOP", time.Since(stopped).Round(time.Millisecond))
	_, other := f.start()
	other.Eventually(10*time.Second, "the other worker completed the task", func() (bool, string) {
		c := f.counts("done")
		return c["task-zombie"] == 1 && c["task-0"] == 1, fmt.Sprint(c)
	})
	zombie.Signal(syscall.SIGCONT)
	zombie.Eventually(10*time.Second, "the zombie's handler finished", func() (bool, string) {
		return f.counts("handled")["task-zombie"] == 2, fmt.Sprint(f.counts("handled"))
	})
	zombie.Eventually(10*time.Second, "the zombie gave up its completion", func() (bool, string) {
		s := zombie.Stderr()
		return strings.Contains(s, "lease lost before tasks could be completed") || strings.Contains(s, "completion refused"), "no such log yet"
	})
	if c := f.counts("done"); c["task-zombie"] != 1 {
		t.Errorf("task-zombie has %d done events, want 1 (the zombie completed it too)", c["task-zombie"])
	}
	zombie.WaitLog(10*time.Second, "lease lost: stopped taking; registering again")
	zombie.Stop(20 * time.Second)
	other.Stop(20 * time.Second)
	f.resc.Eventually(10*time.Second, "settled", func() (bool, string) { return f.settled(2) })
}

// TestWorkerDrainsOnSIGTERM: SIGTERM lets the handlers in flight finish
// within the drain timeout, hands a task stuck past it back to the queue,
// deregisters, and exits 0 with an empty taken list.
func TestWorkerDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	f := newWorkerFleet(t, 100)
	id, w := f.start("-work", "700ms", "-slow", "task-stuck", "-slow-for", "20s", "-drain", "2s", "-concurrency", "8")
	tasks := f.push(0, 4)
	f.rdb.LPush(context.Background(), "events", "task-stuck")
	w.Eventually(10*time.Second, "five tasks in flight", func() (bool, string) {
		n := f.rdb.LLen(context.Background(), "jobs/taken/"+id).Val()
		return n == 5, fmt.Sprintf("%d in the taken list", n)
	})
	sent := time.Now()
	w.Stop(20 * time.Second)
	t.Logf("exited %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
	f.checkExactlyOnce(append(tasks, "task-stuck")[:4])
	testutil.AssertList(t, f.rdb, "jobs", "task-stuck")
	testutil.AssertList(t, f.rdb, "jobs/taken/"+id)
	if n := f.rdb.Exists(context.Background(), keyspace.Replica("resc:", id)).Val(); n != 0 {
		t.Error("the worker is still registered")
	}
	if !strings.Contains(w.Stderr(), "handed tasks back") {
		t.Errorf("no hand-back logged:\n%s", w.Stderr())
	}
}

// TestPoisonTaskDeadLettered: a task that kills every worker that takes
// it is replayed by the leader max_replays times, then dead-lettered as a
// poison task; the other tasks are done exactly once. The worker runs one
// handler at a time: with more, the tasks in flight beside the poison
// task crash with it and are counted with it (README, "Go workers").
func TestPoisonTaskDeadLettered(t *testing.T) {
	t.Parallel()
	f := newWorkerFleet(t, 2)
	flags := []string{"-crash-on", "task-poison", "-work", "5ms", "-concurrency", "1"}
	_, p := f.start(flags...)
	tasks := f.push(0, 50)
	f.rdb.LPush(context.Background(), "events", "task-poison")
	restarts := 0
	deadline := time.Now().Add(60 * time.Second)
	for f.rdb.LLen(context.Background(), "jobs/dead").Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the poison task was not dead-lettered after %d crashes:\n%s", restarts, f.resc.Stderr())
		}
		select {
		case <-p.Done(): // the poison task killed it: a supervisor restarts it
			restarts++
			_, p = f.start(flags...)
		case <-time.After(10 * time.Millisecond): // polling interval
		}
	}
	select {
	case <-p.Done(): // the crash that got it dead-lettered
		restarts++
		_, p = f.start(flags...)
	case <-time.After(2 * time.Second): // longer than dead-after: it had crashed before the leader saw it dead
	}
	f.resc.Eventually(30*time.Second, "the others done", func() (bool, string) {
		ok, state := f.settled(50)
		return ok, state + fmt.Sprintf(", dead %q", testutil.List(t, f.rdb, "jobs/dead"))
	})
	f.checkExactlyOnce(tasks)
	dead := testutil.List(t, f.rdb, "jobs/dead")
	e, err := deadletter.Decode(dead[0])
	if err != nil || len(dead) != 1 || e.Event != "task-poison" || !strings.Contains(e.Reason, "poison task") || e.Count == nil || *e.Count != 2 {
		t.Errorf("dead list %q (%v), want task-poison as a poison task replayed 2 times", dead, err)
	}
	if restarts != 3 {
		t.Errorf("%d workers killed by the poison task, want 3 (first take and 2 replays)", restarts)
	}
	p.Stop(20 * time.Second)
}
