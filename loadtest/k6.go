package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// K6 is what a k6 run reported (its --summary-export).
type K6 struct {
	Pushed   int      `json:"pushed"`
	Seen     int      `json:"seen"`
	PushRate float64  `json:"push_rate"`
	Seconds  float64  `json:"seconds"`
	Latency  *Latency `json:"latency,omitempty"`
}

// k6Env is the environment of a k6 run: no usage report, and no automatic
// extension resolution (k6 1.x otherwise tries to build a custom binary
// over the network for an import it lacks, and this machine has none; the
// script uses the built-in k6/experimental/redis only).
func k6Env() []string {
	return append(os.Environ(), "K6_NO_USAGE_REPORT=true", "K6_AUTO_EXTENSION_RESOLUTION=false")
}

// k6 runs the k6 script against t, then waits for every task of the events
// k6 pushed (in the task queue or moved by k6's observer to its seen
// list) so that the checker can count them.
func (r *runner) k6(ctx context.Context, t *target, rep *Report) (*measured, error) {
	summary := filepath.Join(r.dir, "k6-summary.json")
	seen := t.k.tasks + "/seen"
	args := []string{"run", "--no-usage-report", "--summary-export", summary,
		"-e", "REDIS_URL=" + r.url, "-e", "INPUT=" + t.k.input, "-e", "TASKS=" + t.k.tasks, "-e", "SEEN=" + seen,
		"-e", "RATE=" + strconv.FormatFloat(r.o.Rate, 'f', -1, 64), "-e", "DURATION=" + r.o.Duration.String(),
		"-e", "EVENTS=" + strconv.Itoa(r.o.Events)}
	args = append(args, r.o.K6Args...)
	args = append(args, r.o.K6Script)
	cmd := exec.CommandContext(ctx, r.o.K6, args...)
	cmd.Env = k6Env()
	cmd.Stdout, cmd.Stderr = r.o.Log, r.o.Log
	r.logf("%s %q", r.o.K6, args)
	if t.started != nil {
		t.started()
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("loadtest: k6: %w", err)
	}
	k6Time := time.Since(start)
	k, err := readK6Summary(summary)
	if err != nil {
		return nil, err
	}
	k.Seconds = k6Time.Seconds()
	rep.K6 = k
	rep.Latency = k.Latency
	// Tasks the observer moved to seen count as visible.
	popped := func() int64 { n, _ := r.rdb.LLen(ctx, seen).Result(); return n }
	end, err := r.waitTasks(ctx, t, int64(k.Pushed), popped)
	if err != nil {
		return nil, err
	}
	return &measured{events: k.Pushed, elapsed: end.Sub(start), tally: newTally(k.Pushed), lists: []string{seen}}, nil
}

func readK6Summary(path string) (*K6, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loadtest: k6 summary: %w", err)
	}
	var s struct {
		Metrics map[string]map[string]float64 `json:"metrics"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("loadtest: k6 summary %s: %w", path, err)
	}
	k := &K6{
		Pushed:   int(s.Metrics["events_pushed"]["count"]),
		Seen:     int(s.Metrics["tasks_seen"]["count"]),
		PushRate: s.Metrics["events_pushed"]["rate"],
	}
	if l, ok := s.Metrics["e2e_latency"]; ok {
		k.Latency = &Latency{Count: uint64(k.Seen), Mean: l["avg"], P50: l["med"], P90: l["p(90)"], P99: l["p(99)"], P999: l["p(99.9)"], Max: l["max"]}
	}
	return k, nil
}
