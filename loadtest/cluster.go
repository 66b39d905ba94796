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
	c := &clusterRun{o: o, clk: newClock()}
	dir, err := os.MkdirTemp("", "resc-load-cluster-")
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	defer os.RemoveAll(dir)
	bin := o.Resc
	if bin == "" {
		c.logf("building resc")
		if bin, err = buildResc(ctx, dir); err != nil {
			return nil, err
		}
	}
	c.logf("starting a cluster of %d master(s)", o.Masters)
	nodes, err := redisserver.StartCluster(ctx, dir, o.Masters)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	defer func() {
		for _, n := range nodes {
			n.Kill()
		}
	}()
	c.addrs = make([]string, len(nodes))
	for i, n := range nodes {
		c.addrs[i] = n.Addr()
	}
	c.cc = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs, PoolSize: 16, MaxRetries: -1})
	defer c.cc.Close()

	var id [4]byte
	_, _ = rand.Read(id[:])
	prefix := "lt/" + hex.EncodeToString(id[:]) + "/"
	if c.ws, err = placeWatchers(ctx, c.cc, prefix, o.Masters, o.Events); err != nil {
		return nil, err
	}
	rep = &ClusterReport{Masters: o.Masters, Replicas: o.Replicas, Prefix: prefix, Events: o.Events,
		Machine: machineOf(ctx, c.cc, bin, true)}
	defer func() {
		for _, rp := range c.reps {
			if rp.running() {
				_ = rp.stop(5 * time.Second)
			}
		}
	}()
	sharedSlot, err := c.startReplicas(ctx, dir, bin, prefix+"resc:")
	if err != nil {
		return nil, err
	}
	if err := c.warmup(ctx); err != nil {
		return nil, err
	}
	if err := c.measure(ctx, int(sharedSlot), rep); err != nil {
		return nil, err
	}
	return c.check(ctx, rep)
}

// clusterRun is what the parts of RunCluster share.
type clusterRun struct {
	o     ClusterOptions
	clk   clock
	addrs []string // the masters'
	cc    *redis.ClusterClient
	ws    []clusterWatcher
	reps  []*replica
}

func (c *clusterRun) logf(format string, args ...any) {
	fmt.Fprintf(c.o.Log, "resc-load: "+format+"\n", args...)
}

// alive reports a replica that exited.
func (c *clusterRun) alive() error {
	for _, rp := range c.reps {
		if !rp.running() {
			return fmt.Errorf("loadtest: replica %s exited (code %d); stderr: %s", rp.id, rp.cmd.ProcessState.ExitCode(), rp.stderr.String())
		}
	}
	return nil
}

// countTasks counts the tasks of every watcher.
func (c *clusterRun) countTasks(ctx context.Context) (int64, error) {
	var n int64
	for _, w := range c.ws {
		l, err := c.cc.LLen(ctx, w.k.tasks).Result()
		if err != nil {
			return 0, fmt.Errorf("loadtest: LLEN %s: %w", w.k.tasks, err)
		}
		n += l
	}
	return n, nil
}

// startReplicas writes the configuration of the watchers under the key
// prefix internal, starts the replicas and waits until each registered.
// It returns the slot of the shared keys.
func (c *clusterRun) startReplicas(ctx context.Context, dir, bin, internal string) (int64, error) {
	shape := ruleShape{set: true, concurrency: c.o.Concurrency, batchSize: c.o.BatchSize}
	var watchers []any
	for _, w := range c.ws {
		watchers = append(watchers, watcherConfig(w.k, shape))
	}
	cfg, err := writeConfigFile(dir, "resc", map[string]any{
		"redis":      map[string]any{"url": clusterURL(c.addrs)},
		"key_prefix": internal,
		"watchers":   watchers,
	})
	if err != nil {
		return 0, err
	}
	// The shared keys' master: every shared key is in the slot of the
	// wrapped prefix.
	sharedSlot, err := c.cc.ClusterKeySlot(ctx, keyspace.Replica(keyspace.SharedPrefix(c.cc, internal), "x")).Result()
	if err != nil {
		return 0, fmt.Errorf("loadtest: CLUSTER KEYSLOT: %w", err)
	}
	for i := 1; i <= c.o.Replicas; i++ {
		rp, err := startReplica(bin, "lt-"+strconv.Itoa(i), "off", cfg)
		if err != nil {
			return 0, err
		}
		c.reps = append(c.reps, rp)
	}
	for _, rp := range c.reps {
		key := keyspace.Replica(keyspace.SharedPrefix(c.cc, internal), rp.id)
		if err := awaitCount(ctx, 30*time.Second, c.alive, "replica "+rp.id+" registered", func() (int64, error) {
			return c.cc.Exists(ctx, key).Result()
		}, 1); err != nil {
			return 0, err
		}
	}
	return sharedSlot, nil
}

// warmup pushes and awaits the warm-up events, then deletes their tasks.
func (c *clusterRun) warmup(ctx context.Context) error {
	o, ws := c.o, c.ws
	if o.Warmup <= 0 {
		return nil
	}
	c.logf("%d replica(s) registered; warm-up of %d events", len(c.reps), o.Warmup)
	for i, w := range ws {
		if err := pushEvents(ctx, c.cc, c.clk, w.k.input, i*o.Warmup/len(ws), (i+1)*o.Warmup/len(ws)); err != nil {
			return err
		}
	}
	if err := awaitCount(ctx, o.StallTimeout, c.alive, "warm-up tasks", func() (int64, error) { return c.countTasks(ctx) }, int64(o.Warmup)); err != nil {
		return err
	}
	for _, w := range ws {
		if err := c.cc.Del(ctx, w.k.tasks, w.k.set).Err(); err != nil {
			return err
		}
	}
	return nil
}

// measure preloads the events, releases them at once and times them, and
// reads what each master spent into rep.
func (c *clusterRun) measure(ctx context.Context, sharedSlot int, rep *ClusterReport) error {
	o := c.o
	c.logf("preloading %d events into %d watcher(s)", o.Events, len(c.ws))
	for _, w := range c.ws {
		if err := pushEvents(ctx, c.cc, c.clk, w.k.staging, w.from, w.to); err != nil {
			return err
		}
	}
	masters := make([]*redis.Client, len(c.addrs))
	for i, a := range c.addrs {
		masters[i] = redis.NewClient(&redis.Options{Addr: a})
		defer masters[i].Close()
	}
	before := make([]float64, len(masters))
	for i, m := range masters {
		if err := m.ConfigResetStat(ctx).Err(); err != nil {
			return fmt.Errorf("loadtest: CONFIG RESETSTAT on %s: %w", c.addrs[i], err)
		}
		var err error
		if before[i], err = mainThreadCPU(ctx, m); err != nil {
			return err
		}
	}
	c.logf("measuring: %d events, %d watcher(s) on %d master(s), %d replica(s)", o.Events, len(c.ws), o.Masters, o.Replicas)
	start := time.Now()
	for _, w := range c.ws {
		// RENAME wakes a replica blocked in BLMOVE on the input queue.
		if err := c.cc.Rename(ctx, w.k.staging, w.k.input).Err(); err != nil {
			return fmt.Errorf("loadtest: RENAME %s %s: %w", w.k.staging, w.k.input, err)
		}
	}
	if err := awaitCount(ctx, o.StallTimeout, c.alive, "tasks", func() (int64, error) { return c.countTasks(ctx) }, int64(o.Events)); err != nil {
		return err
	}
	elapsed := time.Since(start)
	rep.Seconds = elapsed.Seconds()
	rep.EventsPerSec = float64(o.Events) / elapsed.Seconds()
	for i, m := range masters {
		l, err := c.masterLoad(ctx, i, m, sharedSlot, before[i])
		if err != nil {
			return err
		}
		rep.CPUPerEvent += l.CPUPerEvent / float64(len(masters))
		rep.PerMaster = append(rep.PerMaster, l)
	}
	if rep.CPUPerEvent > 0 {
		rep.Ceiling = 1e6 / rep.CPUPerEvent
	}
	return nil
}

// masterLoad reads what master i (m) spent since its CPU time was
// cpuBefore.
func (c *clusterRun) masterLoad(ctx context.Context, i int, m *redis.Client, sharedSlot int, cpuBefore float64) (MasterLoad, error) {
	l := MasterLoad{Addr: c.addrs[i], Shared: rangeOwner(sharedSlot, c.o.Masters) == i}
	for _, w := range c.ws {
		if w.master == i {
			l.Watchers++
			l.Events += w.to - w.from
		}
	}
	cpu, err := mainThreadCPU(ctx, m)
	if err != nil {
		return l, err
	}
	l.CPUSec = cpu - cpuBefore
	if l.Commands, err = commandStats(ctx, m, l.Events); err != nil {
		return l, err
	}
	if l.Events > 0 {
		l.CPUPerEvent = l.CPUSec * 1e6 / float64(l.Events)
	}
	return l, nil
}

// check collects every task, gives the checker's verdict in rep and stops
// the replicas.
func (c *clusterRun) check(ctx context.Context, rep *ClusterReport) (*ClusterReport, error) {
	t := newTally(c.o.Events)
	rep.Check = &Check{Left: map[string]int64{}}
	for _, w := range c.ws {
		if err := collect(ctx, c.cc, w.k, t, rep.Check, w.k.tasks); err != nil {
			return nil, err
		}
	}
	t.verdict(rep.Check)
	notes, err := stopReplicas(c.reps)
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
