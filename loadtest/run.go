package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/redisserver"
)

// runner holds what a run shares.
type runner struct {
	o       Options
	clk     clock
	rdb     *redis.Client
	url     string
	private *privateRedis
	dir     string
	resc    string
	prefix  string
	fetch   *fetchServer
	notes   []string
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Log, "resc-load: "+format+"\n", args...)
}

func (r *runner) clientOptions() *redis.Options {
	opts, _ := redis.ParseURL(r.url) // checked in Run
	opts.PoolSize = 16
	opts.MaxRetries = -1
	return opts
}

// Run runs one load test as o says and returns its report. The report is
// returned with an error too when the checker found a problem.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	r := &runner{o: o, clk: newClock()}
	var id [4]byte
	_, _ = rand.Read(id[:])
	r.prefix = "lt/" + hex.EncodeToString(id[:]) + "/"
	if r.dir, err = os.MkdirTemp("", "resc-load-"); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	defer os.RemoveAll(r.dir)

	r.resc = o.Resc
	if r.resc == "" {
		r.logf("building resc")
		if r.resc, err = buildResc(ctx, r.dir); err != nil {
			return nil, err
		}
	}
	if o.RedisURL != "" {
		r.url = o.RedisURL
	} else {
		if r.private, err = startRedis(ctx); err != nil {
			return nil, err
		}
		defer r.private.stop()
		r.url = r.private.URL()
	}
	if _, err := redis.ParseURL(r.url); err != nil {
		return nil, fmt.Errorf("loadtest: bad Redis URL %q: %w", r.url, err)
	}
	r.rdb = redis.NewClient(r.clientOptions())
	defer r.rdb.Close()
	defer func() {
		// Delete every key of the run, even when ctx is done.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if cerr := r.deleteKeys(cctx); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	if o.FetchDelay > 0 {
		if r.fetch, err = startFetchServer(o.FetchDelay); err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, r.fetch.close(ctx)) }()
	}
	rep, err = r.run(ctx)
	if err == nil && rep.Check != nil && !rep.Check.OK {
		err = fmt.Errorf("loadtest: check %s", rep.Check)
	}
	return rep, err
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	o := r.o
	rep := r.newReport(ctx)
	shape := ruleShape{set: !o.NoSet, listener: o.Listener, concurrency: o.Concurrency, fetchConcurrency: o.FetchConcurrency, batchSize: o.BatchSize}
	if r.fetch != nil {
		shape.fetchURL = r.fetch.url
	}
	main := &target{name: "resc-go", k: newKeys(r.prefix)}
	cfg, err := writeConfig(r.dir, "resc", r.url, main.k, shape)
	if err != nil {
		return nil, err
	}
	reps, err := r.startReplicas(ctx, cfg)
	defer func() {
		for _, rp := range reps {
			if rp.running() {
				_ = rp.stop(5 * time.Second)
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	main.alive = func() error {
		for _, rp := range reps {
			if !rp.running() {
				return fmt.Errorf("loadtest: replica %s exited (code %d); stderr: %s", rp.id, rp.cmd.ProcessState.ExitCode(), rp.stderr.String())
			}
		}
		return nil
	}
	r.logf("%d replica(s) registered; warm-up of %d events", len(reps), max(o.Warmup, 0))
	if err := r.warmup(ctx, main, o.Warmup); err != nil {
		return nil, err
	}
	if err := r.measureReplicas(ctx, main, reps, rep); err != nil {
		return nil, err
	}

	// Stop the replicas before the baseline: it gets the machine alone.
	notes, err := stopReplicas(reps)
	r.notes = append(r.notes, notes...)
	if err != nil {
		return nil, err
	}

	if !o.NoBaseline {
		if rep.Baseline, err = r.baseline(ctx, shape); err != nil {
			return nil, err
		}
		rep.ratio()
	}
	rep.Notes = r.notes
	return rep, nil
}

// newReport starts the report of the run: what it runs and on what.
func (r *runner) newReport(ctx context.Context) *Report {
	o := r.o
	rep := &Report{
		Mode: o.Mode, Replicas: o.Replicas, Set: !o.NoSet, Listener: o.Listener,
		Events: o.Events, Prefix: r.prefix,
	}
	if o.FetchDelay > 0 {
		rep.FetchDelayMS = ms(o.FetchDelay)
	}
	switch o.Mode {
	case ModeThroughput:
		rep.Feed = o.Feed
	case ModeRate:
		rep.OfferedRate = o.Rate
		rep.Observe = o.Observe
	case ModeIdle:
		rep.Observe = o.Observe
		rep.GapMS = ms(o.Gap)
	case ModeK6:
		rep.OfferedRate = o.Rate
	}
	rep.Machine = r.machine(ctx)
	return rep
}

// measureReplicas measures the replicas reps of main, sampling their
// memory (and Redis') and profiling the first, and checks what they did:
// the figures go to rep.
func (r *runner) measureReplicas(ctx context.Context, main *target, reps []*replica, rep *Report) error {
	o := r.o
	// Memory sampling runs over the measurement only.
	names, pids := make([]string, 0, len(reps)+1), make([]int, 0, len(reps)+1)
	for _, rp := range reps {
		names, pids = append(names, rp.id), append(pids, rp.pid())
	}
	if r.private != nil {
		names, pids = append(names, "redis-server"), append(pids, r.private.PID())
	}
	sampler := newMemSampler(o.RSSInterval, names, pids)
	sctx, stopSampler := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		sampler.run(sctx)
	}()
	var profiled chan error
	main.started = func() {
		profiled = r.startProfile(ctx, reps[0])
	}

	r.logf("measuring %s: %s", main.name, rep.describe())
	m, err := r.measure(ctx, main, o.Events, rep)
	stopSampler()
	<-sampled
	if profiled != nil {
		if perr := <-profiled; perr != nil {
			r.notes = append(r.notes, perr.Error())
		}
	}
	if err != nil {
		return err
	}
	rep.Events = m.events
	rep.Seconds = m.elapsed.Seconds()
	rep.EventsPerSec = m.perSecond()
	if m.lat != nil {
		rep.Latency = m.lat.summary()
	}
	if m.lag != nil {
		rep.ProducerLag = m.lag.summary()
	}
	rep.Memory = sampler.memory()
	if m.tally == nil { // the listener observer leaves the tasks in the queue
		m.tally = newTally(m.events)
	}
	if rep.Check, err = check(ctx, r.rdb, main.k, m.tally, append([]string{main.k.tasks}, m.lists...)...); err != nil {
		return err
	}
	rep.Check.Duplicates = o.NoSet
	if err := r.redisStats(ctx); err != nil {
		r.notes = append(r.notes, err.Error())
	}
	return nil
}

// measure runs the mode's measurement of n events on t.
func (r *runner) measure(ctx context.Context, t *target, n int, rep *Report) (*measured, error) {
	switch r.o.Mode {
	case ModeRate:
		return r.rate(ctx, t, n, r.o.Rate)
	case ModeIdle:
		return r.idle(ctx, t, n, r.o.Gap)
	case ModeK6:
		return r.k6(ctx, t, rep)
	default:
		return r.throughput(ctx, t, n, r.o.Feed)
	}
}

// startReplicas starts o.Replicas processes lt-1..lt-N and waits until
// each has registered (its liveness key exists) and so is taking events.
func (r *runner) startReplicas(ctx context.Context, cfg string) ([]*replica, error) {
	var reps []*replica
	for i := 1; i <= r.o.Replicas; i++ {
		addr := "off"
		if r.o.PprofDir != "" {
			port, err := redisserver.FreePort()
			if err != nil {
				return reps, err
			}
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		}
		rp, err := startReplica(r.resc, "lt-"+strconv.Itoa(i), addr, cfg)
		if err != nil {
			return reps, err
		}
		reps = append(reps, rp)
	}
	deadline := time.Now().Add(30 * time.Second)
	internal := newKeys(r.prefix).internal
	for _, rp := range reps {
		for {
			n, err := r.rdb.Exists(ctx, keyspace.Replica(internal, rp.id)).Result()
			if err == nil && n == 1 {
				break
			}
			if !rp.running() {
				return reps, fmt.Errorf("loadtest: replica %s exited at start (code %d): %s", rp.id, rp.cmd.ProcessState.ExitCode(), rp.stderr.String())
			}
			if time.Now().After(deadline) {
				return reps, fmt.Errorf("loadtest: replica %s did not register within 30s (%v): %s", rp.id, err, rp.stderr.String())
			}
			sleep(ctx, 10*time.Millisecond)
			if ctx.Err() != nil {
				return reps, ctx.Err()
			}
		}
	}
	return reps, nil
}

// baseline measures resc's algorithm on its own keys, in the same mode
// (ModeRate and ModeK6: its throughput, as it cannot hold their rates).
func (r *runner) baseline(ctx context.Context, shape ruleShape) (*BaselineReport, error) {
	t := &target{name: "baseline", k: newKeys(r.prefix + "base/")}
	shape.listener = true // resc always publishes
	cfg, err := writeConfig(r.dir, "baseline", r.url, t.k, shape)
	if err != nil {
		return nil, err
	}
	b, err := newBaseline(cfg, r.url, t.k)
	if err != nil {
		return nil, err
	}
	bctx, cancel := context.WithCancel(ctx)
	go b.run(bctx)
	t.alive = func() error {
		select {
		case <-b.done:
			if b.err != nil {
				return b.err
			}
			return errors.New("loadtest: baseline stopped")
		default:
			return nil
		}
	}
	n := r.o.BaselineEvents
	warm := min(max(r.o.Warmup, 0), max(10, n/10))
	r.logf("baseline: warm-up of %d events, then %d events", warm, n)
	var m *measured
	if err = r.warmup(ctx, t, warm); err == nil {
		if r.o.Mode == ModeIdle {
			m, err = r.idle(ctx, t, n, r.o.Gap)
		} else {
			m, err = r.throughput(ctx, t, n, "preload")
		}
	}
	cancel()
	err = errors.Join(err, b.wait())
	if err != nil {
		return nil, err
	}
	br := &BaselineReport{Events: m.events, Seconds: m.elapsed.Seconds(), EventsPerSec: m.perSecond()}
	if m.lat != nil {
		br.Latency = m.lat.summary()
	}
	return br, nil
}

// startProfile takes a CPU profile of rp during the measurement when
// PprofDir is set; the channel reports when it is written.
func (r *runner) startProfile(ctx context.Context, rp *replica) chan error {
	if r.o.PprofDir == "" {
		return nil
	}
	if r.private != nil {
		if err := r.rdb.ConfigResetStat(ctx).Err(); err != nil {
			r.notes = append(r.notes, "CONFIG RESETSTAT: "+err.Error())
		}
	}
	done := make(chan error, 1)
	go func() {
		// An execution trace of one second, beside the CPU profile: where the
		// replica's goroutines wait (go tool trace).
		trace := make(chan error, 1)
		go func() {
			url := fmt.Sprintf("http://%s/debug/pprof/trace?seconds=1", rp.httpAddr)
			trace <- fetchTo(ctx, url, filepath.Join(r.o.PprofDir, "trace-"+rp.id+".out"))
		}()
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", rp.httpAddr, r.o.PprofSeconds)
		path := filepath.Join(r.o.PprofDir, "cpu-"+rp.id+".pprof")
		err := fetchTo(ctx, url, path)
		done <- errors.Join(err, <-trace)
	}()
	return done
}

func fetchTo(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("loadtest: profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("loadtest: profile: GET %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// redisStats writes INFO commandstats to PprofDir: on a private Redis,
// reset when the measurement started, so the commands of the measurement
// (and the checker's few reads) only.
func (r *runner) redisStats(ctx context.Context) error {
	if r.o.PprofDir == "" || r.private == nil {
		return nil
	}
	info, err := r.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return fmt.Errorf("loadtest: INFO commandstats: %w", err)
	}
	return os.WriteFile(filepath.Join(r.o.PprofDir, "commandstats.txt"), []byte(info), 0o644)
}

// deleteKeys deletes every key under the run's prefix (SCAN, UNLINK).
func (r *runner) deleteKeys(ctx context.Context) error {
	iter := r.rdb.Scan(ctx, 0, r.prefix+"*", 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := r.rdb.Unlink(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return fmt.Errorf("loadtest: deleting the run's keys: %w", err)
			}
		}
	}
	if err := errors.Join(iter.Err(), flush()); err != nil {
		return fmt.Errorf("loadtest: deleting the run's keys: %w", err)
	}
	return nil
}

// machine describes where the run happens.
func (r *runner) machine(ctx context.Context) Machine {
	return machineOf(ctx, r.rdb, r.resc, r.private != nil)
}

// machineOf describes the machine, the Redis rdb talks to and the resc
// binary resc.
func machineOf(ctx context.Context, rdb redis.Cmdable, resc string, private bool) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), CPU: cpuModel(), RedisPrivate: private}
	if info, err := rdb.Info(ctx, "server").Result(); err == nil {
		m.Redis = redisserver.InfoField(info, "redis_version")
	}
	if out, err := exec.CommandContext(ctx, resc, "--version").Output(); err == nil {
		m.Resc = strings.TrimSpace(string(out))
	}
	return m
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if name, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}
