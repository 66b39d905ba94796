// Command worker is an example worker of resc-go's task queues, written
// with the worker SDK (package worker): it takes the tasks of one queue in
// batches into its own taken list "<queue>/taken/<id>", removes each from
// the queue's dedup set, works on it under a span continuing the trace
// resc-go stored with the task, and completes it by pushing the done
// event (the task itself) to an input queue of resc-go, in one fenced
// script. A failed task is retried with backoff, then dead-lettered in
// "<queue>/dead"; if the worker dies, the resc-go leader puts its tasks
// back in the queue. SIGTERM drains: the tasks in flight finish (up to
// -drain), the others are handed back.
//
// Usage:
//
//	worker -redis-url redis://127.0.0.1:6379/0 -queue trt/plantA/todo \
//	       -set trt/plantA/todo-set -done global/done
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/telemetry"
	"github.com/resc-go/resc/worker"
)

func main() {
	url := flag.String("redis-url", "redis://127.0.0.1:6379/0", "Redis")
	queue := flag.String("queue", "", "the task queue (required)")
	id := flag.String("id", "", "the worker id (default <hostname>-<pid>-<random>); its taken list is <queue>/taken/<id>")
	set := flag.String("set", "", "the dedup set of the queue")
	done := flag.String("done", "", "the input queue that receives done events (the task itself)")
	prefix := flag.String("prefix", "resc:", "resc-go's key prefix")
	concurrency := flag.Int("concurrency", worker.DefaultConcurrency, "tasks handled at once")
	drain := flag.Duration("drain", worker.DefaultDrainTimeout, "how long SIGTERM waits for the tasks in flight")
	child := flag.Bool("child", false, "continue the task's trace as a child span (default: a new trace linked to it), as the replicas' RESC_TRACE_PARENT")
	flag.Parse()
	if *queue == "" {
		flag.Usage()
		os.Exit(2)
	}
	opts, err := redis.ParseURL(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	opts.ContextTimeoutEnabled = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.Default()
	tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "resc-worker"}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	defer func() { _ = tel.Shutdown(context.WithoutCancel(ctx)) }()

	w, err := worker.New(redis.NewClient(opts), worker.Options{
		ID: *id, Prefix: *prefix, Concurrency: *concurrency, DrainTimeout: *drain,
		TraceLink: !*child, TracerProvider: tel.TracerProvider(), MeterProvider: tel.MeterProvider(), Logger: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var hopts []worker.HandleOption
	if *set != "" {
		hopts = append(hopts, worker.WithSet(*set))
	}
	if *done != "" {
		hopts = append(hopts, worker.WithDone(*done))
	}
	err = w.Handle(*queue, func(ctx context.Context, t worker.Task) error {
		// The work. Return an error to retry later, worker.Permanent(err)
		// to dead-letter at once; a panic is a failure too.
		log.Info("working", "task", t.Body, "replays", t.Replays, "failures", t.Failures)
		select {
		case <-time.After(10 * time.Millisecond):
			return nil
		case <-ctx.Done(): // the worker must stop: the task will be handed back
			return ctx.Err()
		}
	}, hopts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := w.Run(ctx); err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return // stopped as asked (SIGTERM, SIGINT), even before it started: exit 0
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "worker:") { // most of the SDK's errors say it already
			msg = "worker: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}
