package systest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// sentinelProducer pushes e/<n> events through the sentinels' primary, one
// every period, and remembers the acknowledged ones.
type sentinelProducer struct {
	rdb  redis.UniversalClient
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	acked map[string]time.Time // event -> when its LPUSH was acknowledged
	n     int
}

func startSentinelProducer(rdb redis.UniversalClient, queue string, period time.Duration) *sentinelProducer {
	p := &sentinelProducer{rdb: rdb, stop: make(chan struct{}), done: make(chan struct{}), acked: map[string]time.Time{}}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			p.n++
			ev := "e/" + strconv.Itoa(p.n)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := rdb.LPush(ctx, queue, ev).Err()
			cancel()
			if err == nil { // an error may hide a push that landed: not counted as acknowledged
				p.mu.Lock()
				p.acked[ev] = time.Now()
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// ackedSince counts the events acknowledged after since, so far.
func (p *sentinelProducer) ackedSince(since time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, at := range p.acked {
		if at.After(since) {
			n++
		}
	}
	return n
}

func (p *sentinelProducer) halt() map[string]time.Time {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

// failoverOutcome counts, after a run through failovers, the acknowledged
// events without their task (lost) and the tasks made more than once.
type failoverOutcome struct{ acked, lost, duplicated, tasks int }

func (o failoverOutcome) String() string {
	return fmt.Sprintf("%d events acknowledged, %d tasks: %d lost, %d duplicated", o.acked, o.tasks, o.lost, o.duplicated)
}

// outcome counts the acknowledged events (e/<n>) whose task (t/<n>) is
// not among tasks, returned with their acknowledgement time, and the
// tasks made more than once.
func outcome(acked map[string]time.Time, tasks []string) (failoverOutcome, map[string]time.Time) {
	count := map[string]int{}
	for _, task := range tasks {
		count[task]++
	}
	o := failoverOutcome{acked: len(acked), tasks: len(tasks)}
	lost := map[string]time.Time{}
	for ev, at := range acked {
		if count["t/"+strings.TrimPrefix(ev, "e/")] == 0 {
			lost[ev] = at
		}
	}
	o.lost = len(lost)
	for _, n := range count {
		o.duplicated += max(0, n-1)
	}
	return o, lost
}

// TestSentinelFailover: a replica configured with redis.sentinel, under a
// steady load, through a SENTINEL FAILOVER and then a kill -9 of the new
// primary: it keeps running without a restart and handles every event
// pushed once the new primary is up; what the failovers lost or repeated
// is counted and logged (README: what a failover can lose).
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	set := redistest.StartSentinelSet(t)
	addrs := `"` + strings.Join(set.SentinelAddrs(), `", "`) + `"`
	cfg := testutil.WriteFile(t, "resc.hjson", `{
  redis: { sentinel: { master_name: "`+redistest.SentinelMaster+`", addrs: [`+addrs+`] } }
  cluster: { heartbeat_interval_ms: 300, dead_after_ms: 1500, scan_interval_ms: 300, leader_ttl_ms: 1500 }
  watchers: [{ input_queue: "in", rules: [{ name: "a", on: "^e/(?P<n>\\d+)$", make: { task: "t/${n}", queue: "todo" } }] }]
}`)
	p := proctest.Start(t, nil, "run", "--replica-id", "s1", "--http-addr", "off", cfg)
	p.WaitLog(20*time.Second, "resc-go started")
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: redistest.SentinelMaster, SentinelAddrs: set.SentinelAddrs()})
	t.Cleanup(func() { rdb.Close() })

	prod := startSentinelProducer(rdb, "in", 2*time.Millisecond)
	loadFor := func() { // a second of steady load, not a synchronisation
		time.Sleep(time.Second)
	}
	loadFor()
	failoverAt := time.Now()
	first := set.Failover(20 * time.Second)
	t.Logf("SENTINEL FAILOVER: primary now %s", first)
	loadFor()
	set.AwaitReplicaSynced(20 * time.Second) // else the kill loses the whole resync
	killed := set.Primary()
	killedAt := time.Now()
	killed.Stop() // kill -9
	second := set.AwaitNewPrimary(first, 20*time.Second)
	t.Logf("kill -9 of %s: primary now %s", first, second)
	recovered := time.Now()
	loadFor()
	acked := prod.halt()

	// Wait until every event pushed is handled: the input queue and the
	// taken lists empty.
	p.Eventually(30*time.Second, "the input queue and taken list drained", func() (bool, string) {
		in, taken := rdb.LLen(context.Background(), "in").Val(), rdb.LLen(context.Background(), "in/taken/s1").Val()
		return in == 0 && taken == 0, fmt.Sprintf("in %d, taken %d", in, taken)
	})
	o, lost := outcome(acked, rdb.LRange(context.Background(), "todo", 0, -1).Val())
	lostAfter, lostFirst, lostSecond := 0, 0, 0
	for _, at := range lost {
		switch {
		case at.Before(killedAt) && at.After(failoverAt):
			lostFirst++
		case !at.Before(killedAt):
			lostSecond++
		}
		if at.After(recovered.Add(500 * time.Millisecond)) {
			lostAfter++
		}
	}
	t.Logf("two failovers under load (about 500 events/s): %v (%d acknowledged around the SENTINEL FAILOVER, %d around the kill -9)", o, lostFirst, lostSecond)
	select {
	case <-p.Done():
		t.Fatalf("the replica exited (code %d) instead of riding the failovers:\n%s", p.ExitCode(), p.Stderr())
	default:
	}
	if lostAfter > 0 {
		t.Errorf("%d events acknowledged after the new primary was up have no task", lostAfter)
	}
	if o.tasks < o.acked/2 {
		t.Errorf("%v: the replica made fewer tasks than half the events", o)
	}
	p.Stop(15 * time.Second)
}

// TestSentinelOverTLS: a replica configured with redis.sentinel and
// redis.tls (mutual TLS to the sentinels and to the primary) handles
// events, rides a SENTINEL FAILOVER without a restart, and handles the
// events pushed once the new primary is up.
func TestSentinelOverTLS(t *testing.T) {
	t.Parallel()
	set := redistest.StartTLSSentinelSet(t)
	f := set.Files
	addrs := `"` + strings.Join(set.SentinelTLS, `", "`) + `"`
	cfg := testutil.WriteFile(t, "resc.hjson", `{
  redis: {
    url: "rediss:///0"
    sentinel: { master_name: "`+redistest.SentinelMaster+`", addrs: [`+addrs+`] }
    tls: { ca_file: "`+f.CA+`", cert_file: "`+f.ClientCert+`", key_file: "`+f.ClientKey+`" }
  }
  cluster: { heartbeat_interval_ms: 300, dead_after_ms: 1500, scan_interval_ms: 300, leader_ttl_ms: 1500 }
  watchers: [{ input_queue: "in", rules: [{ name: "a", on: "^e/(?P<n>\\d+)$", make: { task: "t/${n}", queue: "todo" } }] }]
}`)
	p := proctest.Start(t, nil, "run", "--replica-id", "s1", "--http-addr", "off", cfg)
	p.WaitLog(20*time.Second, "resc-go started")
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: redistest.SentinelMaster, SentinelAddrs: set.SentinelTLS,
		TLSConfig: f.ClientConfig(t)})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	push := func(from, to int) {
		for i := from; i < to; i++ {
			if err := rdb.LPush(ctx, "in", "e/"+strconv.Itoa(i)).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	tasks := func(want int64) {
		p.Eventually(30*time.Second, fmt.Sprintf("%d tasks", want), func() (bool, string) {
			n, err := rdb.LLen(ctx, "todo").Result()
			return err == nil && n == want, fmt.Sprint(n, err)
		})
	}
	push(0, 50)
	tasks(50)
	before := set.PrimaryAddr(t)
	after := set.Failover(t, 20*time.Second)
	t.Logf("SENTINEL FAILOVER over TLS: primary %s -> %s", before, after)
	// The new primary takes writes once it has finished its promotion:
	// the producer's client retries until then.
	push(50, 100)
	tasks(100)
	got := rdb.LRange(ctx, "todo", 0, -1).Val()
	slices.Sort(got)
	if len(slices.Compact(got)) != 100 {
		t.Errorf("%d distinct tasks of 100", len(got))
	}
	select {
	case <-p.Done():
		t.Fatalf("the replica exited (code %d) instead of riding the failover:\n%s", p.ExitCode(), p.Stderr())
	default:
	}
	p.Stop(15 * time.Second)
}
