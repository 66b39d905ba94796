package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/worker"
)

// The throughput of one worker process with a no-op handler (issue 14),
// against the hand-written reliable-queue loop it replaces, on the same
// redis-server in the same run: compare the tasks/s of the two.
//
//	go test ./worker -run '^$' -bench 'Consume' -benchtime 20000x -count 5

// fill pushes n tasks to queue "todo" in pipelined chunks.
func fill(b *testing.B, rdb *redis.Client, n int) {
	b.Helper()
	ctx := context.Background()
	for i := 0; i < n; {
		pipe := rdb.Pipeline()
		for j := 0; j < 1000 && i < n; j++ {
			pipe.LPush(ctx, "todo", fmt.Sprintf("task-%d", i))
			i++
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConsumeSDK(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client()
	ctx := context.Background()
	fill(b, rdb, b.N)
	w, err := worker.New(rdb, worker.Options{ID: "bench", HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 500 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Handle("todo", func(context.Context, worker.Task) error { return nil }, worker.WithDone("done")); err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ResetTimer()
	go func() { done <- w.Run(runCtx) }()
	for rdb.LLen(ctx, "done").Val() < int64(b.N) {
		time.Sleep(time.Millisecond) // polling the end: the handlers' work is all in Redis
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkConsumeLoop is the protocol as DESIGN.md states it, written by
// hand: BRPOPLPUSH (as BLMOVE RIGHT LEFT) into the taken list, work, then LREM and LPUSH of the
// done event in one MULTI (two round trips per task).
func BenchmarkConsumeLoop(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client()
	ctx := context.Background()
	fill(b, rdb, b.N)
	b.ResetTimer()
	for range b.N {
		task, err := rdb.BLMove(ctx, "todo", "todo/taken/loop", "RIGHT", "LEFT", time.Second).Result() // BRPOPLPUSH
		if errors.Is(err, redis.Nil) {
			b.Fatal("queue empty before the end")
		}
		if err != nil {
			b.Fatal(err)
		}
		if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.LRem(ctx, "todo/taken/loop", 1, task)
			p.LPush(ctx, "done", task)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}
