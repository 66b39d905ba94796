package loadtest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/redisserver"
)

// ClusterOptions configure a cluster run (resc-load --cluster N): a private
// Redis Cluster of Masters masters, one watcher per master (its keys
// hash-tagged onto that master's slots), the events split evenly between
// the watchers, preloaded and renamed into their input queues at once.
// Zero values take the defaults listed.
type ClusterOptions struct {
	// Masters is the number of cluster masters, 1 to 16 (required).
	Masters int
	// Events is how many events the measurement pushes (default 200000).
	Events int
	// Replicas is the number of resc processes (default 1).
	Replicas int
	// Warmup is how many events the watchers handle before the
	// measurement (default 2000; -1 for none).
	Warmup int
	// Concurrency and BatchSize set the watchers' keys; 0 leaves
	// resc-go's defaults.
	Concurrency, BatchSize int
	// StallTimeout fails a run whose task count does not move for that
	// long (default 30 s).
	StallTimeout time.Duration
	// Resc is the resc binary; default: built with go build.
	Resc string
	// Log receives progress lines; default io.Discard.
	Log io.Writer
}

func (o *ClusterOptions) defaults() error {
	o.Events = cmpOr(o.Events, 200000)
	o.Replicas = cmpOr(o.Replicas, 1)
	o.Warmup = cmpOr(o.Warmup, 2000)
	o.StallTimeout = cmpOr(o.StallTimeout, 30*time.Second)
	if o.Log == nil {
		o.Log = io.Discard
	}
	var errs []error
	if o.Masters < 1 || o.Masters > 16 {
		errs = append(errs, errors.New("cluster: masters must be 1 to 16"))
	}
	if o.Events < o.Masters {
		errs = append(errs, errors.New("cluster: events must be at least one per master"))
	}
	if o.Replicas < 1 || o.Replicas > 100 {
		errs = append(errs, errors.New("replicas must be 1 to 100"))
	}
	return errors.Join(errs...)
}

// ClusterReport is the outcome of a cluster run. Its JSON form only gains
// fields over time.
type ClusterReport struct {
	Masters  int     `json:"masters"`
	Replicas int     `json:"replicas"`
	Prefix   string  `json:"key_prefix"`
	Machine  Machine `json:"machine"`
	// Events were preloaded; Seconds from the renames into the input
	// queues to the last task visible.
	Events       int     `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_s"`
	// PerMaster is each master's Redis load over the measurement.
	PerMaster []MasterLoad `json:"per_master"`
	// CPUPerEvent is the mean over the masters of their main-thread CPU
	// time per event handled (µs), and Ceiling the events/s one master
	// saturates at with that cost (10⁶ / CPUPerEvent): the throughput
	// each added master adds to what Redis can carry, given replicas
	// enough to drive it.
	CPUPerEvent float64  `json:"cpu_us_per_event"`
	Ceiling     float64  `json:"ceiling_events_per_s_per_master"`
	Check       *Check   `json:"check"`
	Notes       []string `json:"notes,omitempty"`
}

// MasterLoad is one master's share of a cluster run.
type MasterLoad struct {
	Addr     string `json:"addr"`
	Watchers int    `json:"watchers"`
	// Shared tells whether it holds the shared keys (registry, leader
	// lock, counters): they cost per heartbeat, not per event.
	Shared bool `json:"shared_keys"`
	// Events is how many events its watchers handled.
	Events int `json:"events"`
	// CPUSec is the main thread's CPU time (INFO cpu, user + system),
	// CPUPerEvent the same per event in µs.
	CPUSec      float64 `json:"cpu_s"`
	CPUPerEvent float64 `json:"cpu_us_per_event"`
	// Commands are INFO commandstats, busiest first. A command a script
	// runs is counted both under its own name and in the script's time.
	Commands []CommandLoad `json:"commands"`
}

// CommandLoad is one line of INFO commandstats, per event.
type CommandLoad struct {
	Name          string  `json:"name"`
	Calls         int64   `json:"calls"`
	Usec          int64   `json:"usec"`
	CallsPerEvent float64 `json:"calls_per_event"`
	UsecPerEvent  float64 `json:"usec_per_event"`
}

// clusterWatcher is one watcher of a cluster run and the master its tag
// puts it on.
type clusterWatcher struct {
	k        keys
	master   int
	from, to int // its events' seq range
}

// RunCluster runs one cluster load test as o says and returns its report,
// with an error too when the checker found a problem.
func RunCluster(ctx context.Context, o ClusterOptions) (rep *ClusterReport, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(o.Log, "resc-load: "+format+"\n", args...) }
	dir, err := os.MkdirTemp("", "resc-load-cluster-")
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	defer os.RemoveAll(dir)
	bin := o.Resc
	if bin == "" {
		logf("building resc")
		if bin, err = buildResc(ctx, dir); err != nil {
			return nil, err
		}
	}
	logf("starting a cluster of %d master(s)", o.Masters)
	nodes, err := redisserver.StartCluster(ctx, dir, o.Masters)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	defer func() {
		for _, n := range nodes {
			n.Kill()
		}
	}()
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr()
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 16, MaxRetries: -1})
	defer cc.Close()

	var id [4]byte
	_, _ = rand.Read(id[:])
	prefix := "lt/" + hex.EncodeToString(id[:]) + "/"
	ws, err := placeWatchers(ctx, cc, prefix, o.Masters, o.Events)
	if err != nil {
		return nil, err
	}
	rep = &ClusterReport{Masters: o.Masters, Replicas: o.Replicas, Prefix: prefix, Events: o.Events,
		Machine: machineOf(ctx, cc, bin, true)}
	shape := ruleShape{set: true, concurrency: o.Concurrency, batchSize: o.BatchSize}
	var watchers []any
	for _, w := range ws {
		watchers = append(watchers, watcherConfig(w.k, shape))
	}
	internal := prefix + "resc:"
	cfg, err := writeConfigFile(dir, "resc", map[string]any{
		"redis":      map[string]any{"url": clusterURL(addrs)},
		"key_prefix": internal,
		"watchers":   watchers,
	})
	if err != nil {
		return nil, err
	}
	// The shared keys' master: every shared key is in the slot of the
	// wrapped prefix.
	sharedSlot, err := cc.ClusterKeySlot(ctx, keyspace.Replica(keyspace.SharedPrefix(cc, internal), "x")).Result()
	if err != nil {
		return nil, fmt.Errorf("loadtest: CLUSTER KEYSLOT: %w", err)
	}

	var reps []*replica
	defer func() {
		for _, rp := range reps {
			if rp.running() {
				_ = rp.stop(5 * time.Second)
			}
		}
	}()
	for i := 1; i <= o.Replicas; i++ {
		rp, err := startReplica(bin, "lt-"+strconv.Itoa(i), "off", cfg)
		if err != nil {
			return nil, err
		}
		reps = append(reps, rp)
	}
	alive := func() error {
		for _, rp := range reps {
			if !rp.running() {
				return fmt.Errorf("loadtest: replica %s exited (code %d); stderr: %s", rp.id, rp.cmd.ProcessState.ExitCode(), rp.stderr.String())
			}
		}
		return nil
	}
	for _, rp := range reps {
		key := keyspace.Replica(keyspace.SharedPrefix(cc, internal), rp.id)
		if err := awaitCount(ctx, 30*time.Second, alive, "replica "+rp.id+" registered", func() (int64, error) {
			return cc.Exists(ctx, key).Result()
		}, 1); err != nil {
			return nil, err
		}
	}
	clk := newClock()
	countTasks := func() (int64, error) {
		var n int64
		for _, w := range ws {
			l, err := cc.LLen(ctx, w.k.tasks).Result()
			if err != nil {
				return 0, fmt.Errorf("loadtest: LLEN %s: %w", w.k.tasks, err)
			}
			n += l
		}
		return n, nil
	}
	if o.Warmup > 0 {
		logf("%d replica(s) registered; warm-up of %d events", len(reps), o.Warmup)
		for i, w := range ws {
			if err := pushEvents(ctx, cc, clk, w.k.input, i*o.Warmup/len(ws), (i+1)*o.Warmup/len(ws)); err != nil {
				return nil, err
			}
		}
		if err := awaitCount(ctx, o.StallTimeout, alive, "warm-up tasks", countTasks, int64(o.Warmup)); err != nil {
			return nil, err
		}
		for _, w := range ws {
			if err := cc.Del(ctx, w.k.tasks, w.k.set).Err(); err != nil {
				return nil, err
			}
		}
	}
	logf("preloading %d events into %d watcher(s)", o.Events, len(ws))
	for _, w := range ws {
		if err := pushEvents(ctx, cc, clk, w.k.staging, w.from, w.to); err != nil {
			return nil, err
		}
	}
	masters := make([]*redis.Client, len(nodes))
	for i, a := range addrs {
		masters[i] = redis.NewClient(&redis.Options{Addr: a})
		defer masters[i].Close()
	}
	before := make([]float64, len(masters))
	for i, m := range masters {
		if err := m.ConfigResetStat(ctx).Err(); err != nil {
			return nil, fmt.Errorf("loadtest: CONFIG RESETSTAT on %s: %w", addrs[i], err)
		}
		if before[i], err = mainThreadCPU(ctx, m); err != nil {
			return nil, err
		}
	}
	logf("measuring: %d events, %d watcher(s) on %d master(s), %d replica(s)", o.Events, len(ws), o.Masters, o.Replicas)
	start := time.Now()
	for _, w := range ws {
		// RENAME wakes a replica blocked in BLMOVE on the input queue.
		if err := cc.Rename(ctx, w.k.staging, w.k.input).Err(); err != nil {
			return nil, fmt.Errorf("loadtest: RENAME %s %s: %w", w.k.staging, w.k.input, err)
		}
	}
	if err := awaitCount(ctx, o.StallTimeout, alive, "tasks", countTasks, int64(o.Events)); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	rep.Seconds = elapsed.Seconds()
	rep.EventsPerSec = float64(o.Events) / elapsed.Seconds()
	for i, m := range masters {
		l := MasterLoad{Addr: addrs[i], Shared: rangeOwner(int(sharedSlot), o.Masters) == i}
		for _, w := range ws {
			if w.master == i {
				l.Watchers++
				l.Events += w.to - w.from
			}
		}
		cpu, err := mainThreadCPU(ctx, m)
		if err != nil {
			return nil, err
		}
		l.CPUSec = cpu - before[i]
		if l.Commands, err = commandStats(ctx, m, l.Events); err != nil {
			return nil, err
		}
		if l.Events > 0 {
			l.CPUPerEvent = l.CPUSec * 1e6 / float64(l.Events)
		}
		rep.CPUPerEvent += l.CPUPerEvent / float64(len(masters))
		rep.PerMaster = append(rep.PerMaster, l)
	}
	if rep.CPUPerEvent > 0 {
		rep.Ceiling = 1e6 / rep.CPUPerEvent
	}

	t := newTally(o.Events)
	rep.Check = &Check{Left: map[string]int64{}}
	for _, w := range ws {
		if err := collect(ctx, cc, w.k, t, rep.Check, w.k.tasks); err != nil {
			return nil, err
		}
	}
	t.verdict(rep.Check)
	notes, err := stopReplicas(reps)
	rep.Notes = append(rep.Notes, notes...)
	if err != nil {
		return rep, err
	}
	if !rep.Check.OK {
		return rep, fmt.Errorf("loadtest: check %s", rep.Check)
	}
	return rep, nil
}

// placeWatchers makes one watcher per master, its keys under a hash tag
// {<prefix>w<j>} whose slot that master serves (StartCluster gives master
// i the i-th of masters even slot ranges), and splits the events between
// them in even seq ranges.
func placeWatchers(ctx context.Context, cc *redis.ClusterClient, prefix string, masters, events int) ([]clusterWatcher, error) {
	var ws []clusterWatcher
	for j := 0; len(ws) < masters && j < 100*masters; j++ {
		tag := "{" + prefix + "w" + strconv.Itoa(j) + "}/"
		slot, err := cc.ClusterKeySlot(ctx, tag).Result()
		if err != nil {
			return nil, fmt.Errorf("loadtest: CLUSTER KEYSLOT: %w", err)
		}
		m := rangeOwner(int(slot), masters)
		if m != len(ws) {
			continue // that master has its watcher, or another comes first
		}
		i := len(ws)
		ws = append(ws, clusterWatcher{k: newKeys(tag), master: m, from: i * events / masters, to: (i + 1) * events / masters})
	}
	if len(ws) < masters {
		return nil, fmt.Errorf("loadtest: no hash tag found for each of %d masters", masters)
	}
	return ws, nil
}

// rangeOwner is the master serving slot when StartCluster split the slots
// between masters masters.
func rangeOwner(slot, masters int) int {
	for i := range masters {
		if slot < (i+1)*16384/masters {
			return i
		}
	}
	return masters - 1
}

// clusterURL is the go-redis cluster URL of the seeds addrs.
func clusterURL(addrs []string) string {
	u := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + a
	}
	return u
}

// awaitCount polls count every millisecond until it reaches want; it fails
// when the count does not move for timeout, or alive reports an error.
func awaitCount(ctx context.Context, timeout time.Duration, alive func() error, what string, count func() (int64, error), want int64) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	last, lastMove := int64(-1), time.Now()
	for {
		n, err := count()
		if err != nil {
			return err
		}
		if n >= want {
			return nil
		}
		now := time.Now()
		if n != last {
			last, lastMove = n, now
		} else if now.Sub(lastMove) > timeout {
			return fmt.Errorf("loadtest: %s: %d of %d, no progress for %v", what, n, want, timeout)
		}
		if err := alive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// mainThreadCPU is the CPU time, user and system, of the main thread of
// the server c talks to, in seconds.
func mainThreadCPU(ctx context.Context, c *redis.Client) (float64, error) {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("loadtest: INFO cpu: %w", err)
	}
	var sum float64
	for _, f := range []string{"used_cpu_user_main_thread", "used_cpu_sys_main_thread"} {
		v, err := strconv.ParseFloat(redisserver.InfoField(info, f), 64)
		if err != nil {
			return 0, fmt.Errorf("loadtest: INFO cpu %s: %w", f, err)
		}
		sum += v
	}
	return sum, nil
}

// commandStats reads INFO commandstats of c's server, busiest first, per
// event of events.
func commandStats(ctx context.Context, c *redis.Client, events int) ([]CommandLoad, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("loadtest: INFO commandstats: %w", err)
	}
	var cs []CommandLoad
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !ok || !found {
			continue
		}
		l := CommandLoad{Name: name}
		for kv := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				l.Calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				l.Usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		if events > 0 {
			l.CallsPerEvent = float64(l.Calls) / float64(events)
			l.UsecPerEvent = float64(l.Usec) / float64(events)
		}
		cs = append(cs, l)
	}
	slices.SortFunc(cs, func(a, b CommandLoad) int { return cmp.Compare(b.Usec, a.Usec) })
	return cs, nil
}

// WriteText writes the report for a reader.
func (r *ClusterReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "resc-load cluster: %d master(s), one watcher each, %d replica(s), %d events\n", r.Masters, r.Replicas, r.Events)
	fmt.Fprintf(w, "machine: %d CPUs %s, %s, redis %s, %s\n", r.Machine.CPUs, r.Machine.CPU, r.Machine.Go, r.Machine.Redis, r.Machine.Resc)
	fmt.Fprintf(w, "throughput: %.0f events/s (%.2f s)\n", r.EventsPerSec, r.Seconds)
	for _, m := range r.PerMaster {
		shared := ""
		if m.Shared {
			shared = ", shared keys"
		}
		fmt.Fprintf(w, "master %s (%d watcher(s)%s): %d events, main thread %.3f s CPU = %.2f µs/event\n", m.Addr, m.Watchers, shared, m.Events, m.CPUSec, m.CPUPerEvent)
		for _, c := range m.Commands[:min(len(m.Commands), 6)] {
			fmt.Fprintf(w, "  %-14s %8.3f calls/event %8.3f µs/event\n", c.Name, c.CallsPerEvent, c.UsecPerEvent)
		}
	}
	fmt.Fprintf(w, "Redis CPU per event: %.2f µs (mean over masters); ceiling per master: %.0f events/s\n", r.CPUPerEvent, r.Ceiling)
	if r.Check != nil {
		fmt.Fprintf(w, "check: %s\n", r.Check)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
