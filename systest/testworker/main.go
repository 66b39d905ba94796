// Command testworker is the worker program of the process tests (package
// systest): a worker of package worker whose handler misbehaves on
// demand, so that the tests can kill, pause and stop real processes.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/worker"
)

func main() {
	url := flag.String("redis-url", "", "Redis")
	id := flag.String("id", "", "worker id")
	queue := flag.String("queue", "jobs", "task queue")
	set := flag.String("set", "", "dedup set")
	done := flag.String("done", "done", "done queue")
	handled := flag.String("handled", "handled", "list the handler RPUSHes each task to before it returns nil")
	concurrency := flag.Int("concurrency", 8, "handlers at once")
	work := flag.Duration("work", 0, "time each task takes")
	slow := flag.String("slow", "", "a task that takes -slow-for")
	slowFor := flag.Duration("slow-for", 3*time.Second, "")
	crashOn := flag.String("crash-on", "", "a task on which the process SIGKILLs itself")
	panicEvery := flag.Int("panic-every", 0, "panic on the first attempt of task-<n> when n is a multiple")
	heartbeat := flag.Duration("heartbeat", 100*time.Millisecond, "")
	deadAfter := flag.Duration("dead-after", time.Second, "")
	drain := flag.Duration("drain", 5*time.Second, "")
	onCluster := flag.Bool("cluster", false, "-redis-url is a Redis Cluster (go-redis cluster URL)")
	flag.Parse()
	var rdb redis.UniversalClient
	if *onCluster {
		opts, err := redis.ParseClusterURL(*url)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		opts.ContextTimeoutEnabled = true
		rdb = redis.NewClusterClient(opts)
	} else {
		opts, err := redis.ParseURL(*url)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		opts.ContextTimeoutEnabled = true
		rdb = redis.NewClient(opts)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w, err := worker.New(rdb, worker.Options{
		ID: *id, Concurrency: *concurrency, DrainTimeout: *drain, Logger: log,
		RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond, MaxReplays: 100,
		HeartbeatInterval: *heartbeat, DeadAfter: *deadAfter,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var opt []worker.HandleOption
	if *set != "" {
		opt = append(opt, worker.WithSet(*set))
	}
	if *done != "" {
		opt = append(opt, worker.WithDone(*done))
	}
	err = w.Handle(*queue, func(ctx context.Context, t worker.Task) error {
		switch {
		case t.Body == *crashOn:
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		case t.Body == *slow:
			log.Info("slow task started", "task", t.Body)
			time.Sleep(*slowFor) // ignores ctx, as a hung call would
		case *work > 0:
			time.Sleep(*work)
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(t.Body, "task-")); err == nil && *panicEvery > 0 && n%*panicEvery == 0 && t.Failures == 0 {
			panic("test panic on " + t.Body)
		}
		return rdb.RPush(context.WithoutCancel(ctx), *handled, t.Body).Err()
	}, opt...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := w.Run(ctx); err != nil {
		log.Error("worker stopped", "err", err)
		os.Exit(1)
	}
	log.Info("worker stopped")
}
