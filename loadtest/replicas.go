package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/resc-go/resc/internal/proctest"
)

// replica is one `resc run` process.
type replica struct {
	id       string
	httpAddr string // "off" unless profiling
	cmd      *exec.Cmd
	stderr   tailBuffer
	exited   chan struct{}
}

// startReplica starts `resc run --replica-id ID --http-addr ADDR CONFIG`
// with RESC_LOG=warn and the environment of the generator less its RESC_*
// and OTEL_* variables.
func startReplica(bin, id, httpAddr, config string) (*replica, error) {
	r := &replica{id: id, httpAddr: httpAddr, exited: make(chan struct{})}
	r.cmd = exec.Command(bin, "run", "--replica-id", id, "--http-addr", httpAddr, config)
	env := []string{"RESC_LOG=warn"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RESC_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	r.cmd.Env = env
	r.cmd.Stderr = &r.stderr
	r.cmd.Stdout = &r.stderr
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadtest: starting %s: %w", bin, err)
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.exited)
	}()
	return r, nil
}

func (r *replica) pid() int { return r.cmd.Process.Pid }

func (r *replica) running() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for the process to exit 0 (it drains and
// deregisters); after timeout it is killed and stop reports it.
func (r *replica) stop(timeout time.Duration) error {
	if !r.running() {
		return r.exitErr()
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		return r.exitErr()
	case <-time.After(timeout):
		_ = r.cmd.Process.Kill()
		<-r.exited
		return fmt.Errorf("loadtest: replica %s did not stop within %v after SIGTERM; stderr: %s", r.id, timeout, r.stderr.String())
	}
}

// stopReplicas stops reps (SIGTERM, 30 s each) and returns a note for each
// that logged errors, and the errors of those that did not stop cleanly.
func stopReplicas(reps []*replica) (notes []string, err error) {
	var errs []error
	for _, rp := range reps {
		if err := rp.stop(30 * time.Second); err != nil {
			errs = append(errs, err)
		} else if strings.Contains(rp.stderr.String(), "level=ERROR") {
			notes = append(notes, fmt.Sprintf("replica %s logged errors: %s", rp.id, lastLines(rp.stderr.String(), 5)))
		}
	}
	return notes, errors.Join(errs...)
}

func (r *replica) exitErr() error {
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("loadtest: replica %s exited with code %d; stderr: %s", r.id, code, r.stderr.String())
	}
	return nil
}

// tailBuffer keeps the last 16 KiB written to it: a replica's log, shown
// when something goes wrong.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - 16<<10; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}

// buildResc builds cmd/resc of the product module into dir (proctest.Build),
// from the current directory, which must be inside the resc-go working tree
// (the product module, or this one, which replaces it with the tree).
func buildResc(ctx context.Context, dir string) (string, error) {
	bin, err := proctest.Build(ctx, dir, proctest.BuildOptions{})
	if err != nil {
		return "", fmt.Errorf("loadtest: building resc (run from inside the resc-go working tree, or give --resc): %w", err)
	}
	return bin, nil
}

// procMem is what /proc/<pid>/status says of a process's memory, in KiB.
type procMem struct {
	rss, hwm int64 // VmRSS (resident now) and VmHWM (resident peak)
}

func readProcMem(pid int) (procMem, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return procMem{}, err
	}
	defer f.Close()
	var m procMem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return procMem{}, fmt.Errorf("/proc/%d/status: %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			m.rss = n
		} else {
			m.hwm = n
		}
	}
	if err := sc.Err(); err != nil {
		return procMem{}, err
	}
	if m.rss == 0 {
		return procMem{}, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
	}
	return m, nil
}

// Memory is the resident memory of one process over a measurement, in MiB.
type Memory struct {
	Name string `json:"name"`
	// Start is the RSS when the measurement started (after the warm-up),
	// End the last sample; Peak is VmHWM at the end: the largest RSS the
	// process ever had, start-up and warm-up included.
	Start float64 `json:"rss_start_mib"`
	Peak  float64 `json:"rss_peak_mib"`
	End   float64 `json:"rss_end_mib"`
	// Slope is the growth of the RSS over the second half of the
	// measurement, by least squares, in MiB per minute: near 0 when the
	// memory does not grow. 0 with fewer than 20 samples (a run shorter
	// than 20 --rss-interval), too few to tell.
	Slope float64 `json:"rss_slope_mib_per_min"`
	// Samples are the RSS every --rss-interval since the start, in MiB.
	Samples []float64 `json:"rss_samples_mib"`
}

// minSlopeSamples is the fewest samples a growth slope is computed from.
const minSlopeSamples = 20

// memSampler samples the RSS of processes at a fixed interval.
type memSampler struct {
	names    []string
	pids     []int
	interval time.Duration
	samples  [][]int64 // by process, KiB
	times    []time.Duration
	hwm      []int64
	start    time.Time
}

func newMemSampler(interval time.Duration, names []string, pids []int) *memSampler {
	return &memSampler{names: names, pids: pids, interval: interval, samples: make([][]int64, len(pids)), hwm: make([]int64, len(pids))}
}

// run samples until ctx is done, then takes a last sample.
func (s *memSampler) run(ctx context.Context) {
	s.start = time.Now()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.sample()
		select {
		case <-ctx.Done():
			s.sample()
			return
		case <-t.C:
		}
	}
}

func (s *memSampler) sample() {
	s.times = append(s.times, time.Since(s.start))
	for i, pid := range s.pids {
		m, err := readProcMem(pid)
		if err != nil { // the process is gone: keep its last value
			if n := len(s.samples[i]); n > 0 {
				m.rss = s.samples[i][n-1]
			}
		}
		s.samples[i] = append(s.samples[i], m.rss)
		s.hwm[i] = max(s.hwm[i], m.hwm)
	}
}

// memory summarises the samples; call it after run returned.
func (s *memSampler) memory() []Memory {
	out := make([]Memory, len(s.pids))
	for i := range s.pids {
		v := s.samples[i]
		m := Memory{Name: s.names[i], Peak: mib(s.hwm[i])}
		if len(v) > 0 {
			m.Start, m.End = mib(v[0]), mib(v[len(v)-1])
		}
		m.Samples = make([]float64, len(v))
		for j, x := range v {
			m.Samples[j] = mib(x)
		}
		if len(v) >= minSlopeSamples {
			half := len(v) / 2
			m.Slope = slope(s.times[half:], m.Samples[half:])
		}
		out[i] = m
	}
	return out
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// slope is the least-squares slope of y over t, per minute.
func slope(t []time.Duration, y []float64) float64 {
	n := float64(len(y))
	if len(y) < 2 {
		return 0
	}
	var st, sy, stt, sty float64
	for i := range y {
		x := t[i].Minutes()
		st += x
		sy += y[i]
		stt += x * x
		sty += x * y[i]
	}
	d := n*stt - st*st
	if d == 0 {
		return 0
	}
	return (n*sty - st*sy) / d
}
