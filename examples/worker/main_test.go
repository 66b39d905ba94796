package main

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// TestWorkerExample runs the example as a process: it takes the tasks,
// cleans their dedup set, pushes their done events with trace contexts
// continuing the stored ones, and exits 0 on SIGTERM, deregistered.
func TestWorkerExample(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	const stored = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	rdb.LPush(ctx, "trt/a/todo", "trt/a/1", "trt/a/2")
	rdb.ZAdd(ctx, "trt/a/todo-set", redis.Z{Score: 1, Member: "trt/a/1"}, redis.Z{Score: 1, Member: "trt/a/2"})
	rdb.Set(ctx, keyspace.TraceContext("resc:", "trt/a/todo", "trt/a/1"), stored, time.Hour)

	cmd, stderr := startWorker(t, "console", "-redis-url", srv.URL(), "-queue", "trt/a/todo", "-set", "trt/a/todo-set", "-done", "global/done", "-id", "w1", "-child")
	testutil.Eventually(t, "both done events", func() bool { return rdb.LLen(ctx, "global/done").Val() == 2 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	if n := rdb.ZCard(ctx, "trt/a/todo-set").Val() + rdb.LLen(ctx, "trt/a/todo/taken/w1").Val(); n != 0 {
		t.Errorf("set or taken list not emptied: %d", n)
	}
	done := rdb.Get(ctx, keyspace.TraceContext("resc:", "global/done", "trt/a/1")).Val()
	if !strings.HasPrefix(done, "00-0af7651916cd43dd8448eb211c80319c-") || strings.Contains(done, "b7ad6b7169203331") {
		t.Errorf("done event's trace context %q, want a child span of the stored trace", done)
	}
	if rdb.Exists(ctx, keyspace.Replica("resc:", "w1")).Val() != 0 {
		t.Error("still registered after exit")
	}
}

// TestWorkerStopsQuietlyWhileWaiting: SIGTERM while the worker waits for
// an earlier registration of its id to expire is a requested stop: exit 0,
// nothing printed as an error (it was "worker: worker: context canceled",
// exit 1).
func TestWorkerStopsQuietlyWhileWaiting(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	// The registration of a worker w1 that was killed a moment ago.
	if err := rdb.Set(ctx, keyspace.Replica("resc:", "w1"), "earlier-token", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	cmd, stderr := startWorker(t, "none", "-redis-url", srv.URL(), "-queue", "trt/a/todo", "-id", "w1")
	testutil.Eventually(t, "the worker waiting for the earlier registration", func() bool {
		return strings.Contains(stderr.String(), "waiting for it to expire")
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM while waiting: %v, want 0", err)
	}
	if s := stderr.String(); strings.Contains(s, "context canceled") || strings.Contains(s, "worker: worker:") {
		t.Errorf("a requested stop printed as an error:\n%s", s)
	}
}

// startWorker builds the example and starts it with args, its traces
// exported as OTEL_TRACES_EXPORTER says (none, console), its stderr kept.
func startWorker(t *testing.T, traces string, args ...string) (*exec.Cmd, *testutil.Buffer) {
	t.Helper()
	bin := t.TempDir() + "/worker"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	stderr := &testutil.Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"OTEL_TRACES_EXPORTER=" + traces, "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none"}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, stderr
}
