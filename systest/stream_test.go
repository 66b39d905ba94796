package systest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// streamReader follows a listener stream the way a consumer should: XREAD
// from the last entry ID it has seen, on again after any error (a Redis
// restart included).
type streamReader struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	entries []redis.XMessage
	errs    int
}

func readStream(t *testing.T, addr, key string) *streamReader {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ReadTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	r := &streamReader{cancel: cancel}
	r.wg.Go(func() {
		defer rdb.Close()
		retry := time.NewTicker(50 * time.Millisecond)
		defer retry.Stop()
		last := "0"
		for ctx.Err() == nil {
			res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{key, last}, Count: 1000, Block: time.Second}).Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				r.mu.Lock()
				r.errs++
				r.mu.Unlock()
				select { // Redis is away: try again at a steady pace
				case <-ctx.Done():
				case <-retry.C:
				}
				continue
			}
			for _, s := range res {
				r.mu.Lock()
				r.entries = append(r.entries, s.Messages...)
				r.mu.Unlock()
				if n := len(s.Messages); n > 0 {
					last = s.Messages[n-1].ID
				}
			}
		}
	})
	t.Cleanup(r.stop)
	return r
}

func (r *streamReader) stop() { r.cancel(); r.wg.Wait() }

// snapshot returns the entries read so far and the read errors.
func (r *streamReader) snapshot() ([]redis.XMessage, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]redis.XMessage(nil), r.entries...), r.errs
}

func (r *streamReader) dones() int {
	es, _ := r.snapshot()
	n := 0
	for _, e := range es {
		if e.Values["type"] == "DONE" {
			n++
		}
	}
	return n
}

// TestListenerStreamAcrossRedisRestart: a replica commits a steady stream
// of events with listener_stream set while Redis (AOF, appendfsync always)
// is killed -9 and restarted. A consumer that reads on from its last entry
// ID sees every committed event's TRIGGER and DONE exactly once, the
// TRIGGERs match the tasks in the queue one for one, and what it read
// equals the stream itself: nothing the pub/sub channel would have lost.
func TestListenerStreamAcrossRedisRestart(t *testing.T) {
	t.Parallel()
	const stream = "resc/listener"
	srv := redistest.Start(t, redistest.Option{"--appendonly", "yes", "--appendfsync", "always"})
	rdb := srv.Client()
	top := "listener_stream: " + stream + "\n  listener_stream_maxlen: 1000000"
	cfg := testutil.WriteFile(t, "resc.hjson", procConfigText(srv.URL(), "http://127.0.0.1:1", top, ""))
	p := proctest.Start(t, nil, "run", "--replica-id", "s1", "--http-addr", "off", cfg)
	reader := readStream(t, srv.Addr(), stream)

	// The producer pushes acq/N every millisecond, through the outage; an
	// event whose LPUSH failed may or may not have been pushed.
	pusher := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { pusher.Close() })
	var (
		mu        sync.Mutex
		pushed    []string
		uncertain = map[string]bool{}
		wg        sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ev := "acq/" + strconv.Itoa(n)
			err := pusher.LPush(context.Background(), "in", ev).Err()
			mu.Lock()
			pushed = append(pushed, ev)
			if err != nil {
				uncertain[ev] = true
			}
			mu.Unlock()
		}
	})
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(halt)

	p.Eventually(20*time.Second, "300 DONE entries before the restart", func() (bool, string) {
		n := reader.dones()
		return n >= 300, fmt.Sprintf("%d DONE entries", n)
	})
	srv.Stop() // kill -9
	before, _ := reader.snapshot()
	srv.Restart()
	p.Eventually(20*time.Second, "300 more DONE entries after the restart", func() (bool, string) {
		n := reader.dones()
		return n >= len(before)/2+300, fmt.Sprintf("%d DONE entries, %d read before the restart", n, len(before))
	})
	halt()

	ctx := t.Context()
	p.Eventually(30*time.Second, "every event handled", func() (bool, string) {
		in, taken := rdb.LLen(ctx, "in").Val(), rdb.LLen(ctx, "in/taken/s1").Val()
		return in == 0 && taken == 0, fmt.Sprintf("in %d, in/taken/s1 %d", in, taken)
	})
	want := rdb.XLen(ctx, stream).Val()
	p.Eventually(20*time.Second, "the reader caught up with the stream", func() (bool, string) {
		got, _ := reader.snapshot()
		return int64(len(got)) == want, fmt.Sprintf("read %d of %d entries", len(got), want)
	})
	reader.stop()
	got, errs := reader.snapshot()
	if errs == 0 {
		t.Fatalf("the reader saw no error: Redis was not away")
	}
	all, err := rdb.XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for i := range all {
		if got[i].ID != all[i].ID {
			t.Fatalf("entry %d read %s, stream has %s", i, got[i].ID, all[i].ID)
		}
	}

	tasks := map[string]int{}
	for _, task := range testutil.List(t, rdb, "trt/todo") {
		tasks[task]++
	}
	triggers, dones := map[string]int{}, map[string]int{}
	for _, e := range got {
		ev, _ := e.Values["event"].(string)
		switch e.Values["type"] {
		case "TRIGGER":
			task, _ := e.Values["task"].(string)
			if want := "trt/" + ev[len("acq/"):]; task != want || e.Values["queue"] != "in/taken" {
				t.Errorf("TRIGGER entry %v, want queue in/taken, task %s", e.Values, want)
			}
			triggers[task]++
		case "DONE":
			dones[ev]++
		default:
			t.Errorf("entry %v of an unknown type", e.Values)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ev := range pushed {
		task := "trt/" + ev[len("acq/"):]
		switch {
		case uncertain[ev] && dones[ev] == 0 && tasks[task] == 0:
			// not pushed: its LPUSH failed with Redis
		case dones[ev] != 1 || triggers[task] != 1 || tasks[task] != 1:
			t.Errorf("event %s: %d DONE, %d TRIGGER entries, %d tasks in trt/todo; want 1 each", ev, dones[ev], triggers[task], tasks[task])
		}
	}
	if len(tasks) != len(triggers) {
		t.Errorf("%d distinct tasks, %d TRIGGER entries", len(tasks), len(triggers))
	}
	p.Stop(10 * time.Second)
	t.Logf("%d events pushed (%d uncertain), %d stream entries, %d read before the restart, %d reader errors",
		len(pushed), len(uncertain), len(got), len(before), errs)
}
