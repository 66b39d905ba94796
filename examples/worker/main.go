// Command worker is an example worker of resc's reliable-queue protocol,
// continuing the traces resc-go stores beside each task.
//
// For each task: BLMOVE it from the queue into the worker's own taken list,
// ZREM it from its dedup set (so the same task can be made again), read its
// trace context (GET <prefix>trace:<queue>:<task>), work under a consumer
// span that links to it (or is its child with -child), then in one
// MULTI/EXEC: store the trace context of the done event for resc-go
// (SET <prefix>trace:<done queue>:<event> PX ...), LPUSH the done event,
// LREM the task from the taken list and DEL the task's trace context. A
// worker that dies mid-task leaves it in its taken list, to be moved back by
// whoever watches that list.
//
// Workers in other languages need none of the trace part: the keys are
// optional. Usage:
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
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/resc-go/resc/telemetry"
)

// worker is one worker's settings.
type worker struct {
	rdb    *redis.Client
	tracer trace.Tracer
	queue  string // where tasks are taken from
	taken  string // this worker's taken list
	set    string // the dedup set of queue, "" for none
	done   string // the input queue done events go to, "" for none
	prefix string // resc-go's key prefix
	child  bool   // continue the task's trace as a child instead of a link
	ttl    time.Duration
	work   func(ctx context.Context, task string) error
}

func main() {
	var w worker
	url := flag.String("redis-url", "redis://127.0.0.1:6379/0", "Redis")
	flag.StringVar(&w.queue, "queue", "", "the task queue (required)")
	flag.StringVar(&w.taken, "taken", "", "this worker's taken list (default <queue>/taken/<hostname>-<pid>)")
	flag.StringVar(&w.set, "set", "", "the dedup set of the queue")
	flag.StringVar(&w.done, "done", "", "the input queue that receives done events (the task itself)")
	flag.StringVar(&w.prefix, "prefix", "resc:", "resc-go's key prefix")
	flag.BoolVar(&w.child, "child", false, "continue the task's trace as a child span instead of a link")
	flag.DurationVar(&w.ttl, "trace-ttl", 24*time.Hour, "how long the done event's trace context lives")
	flag.Parse()
	if w.queue == "" {
		flag.Usage()
		os.Exit(2)
	}
	if w.taken == "" {
		host, _ := os.Hostname()
		w.taken = fmt.Sprintf("%s/taken/%s-%d", w.queue, host, os.Getpid())
	}
	opts, err := redis.ParseURL(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.Default()
	tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "resc-worker"}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	defer func() { _ = tel.Shutdown(context.WithoutCancel(ctx)) }()
	w.rdb = redis.NewClient(opts)
	w.tracer = tel.TracerProvider().Tracer("resc-worker")
	w.work = func(ctx context.Context, task string) error {
		log.Info("working", "task", task)
		return nil
	}
	for ctx.Err() == nil {
		if err := w.takeOne(ctx, time.Second); err != nil && ctx.Err() == nil {
			log.Warn("task failed: it stays in the taken list", "err", err)
			time.Sleep(time.Second)
		}
	}
}

// takeOne takes one task, waiting up to block for it, and handles it.
func (w *worker) takeOne(ctx context.Context, block time.Duration) error {
	task, err := w.rdb.BLMove(ctx, w.queue, w.taken, "RIGHT", "LEFT", block).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return err
	}
	return w.handle(ctx, task)
}

// handle works on a taken task and reports it done.
func (w *worker) handle(ctx context.Context, task string) error {
	if w.set != "" {
		if err := w.rdb.ZRem(ctx, w.set, task).Err(); err != nil {
			return err
		}
	}
	// The trace context resc-go stored with the task, if any.
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String("messaging.system", "redis"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", w.queue),
		attribute.String("resc.task", task),
	)}
	if tp, err := w.rdb.Get(ctx, traceKey(w.prefix, w.queue, task)).Result(); err == nil {
		prop := otel.GetTextMapPropagator()
		parent := prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
		if sc := trace.SpanContextFromContext(parent); sc.IsValid() {
			if w.child {
				ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
			} else {
				opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: sc}))
			}
		}
	}
	ctx, span := w.tracer.Start(ctx, "process "+w.queue, opts...)
	defer span.End()
	if err := w.work(ctx, task); err != nil {
		span.RecordError(err)
		return err
	}
	// Done: the done event (resc's convention: the task itself), its trace
	// context, and the task out of the taken list, all at once.
	_, err := w.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if w.done != "" {
			c := propagation.MapCarrier{}
			otel.GetTextMapPropagator().Inject(ctx, c)
			if tp := c["traceparent"]; tp != "" {
				p.Set(ctx, traceKey(w.prefix, w.done, task), tp, w.ttl)
			}
			p.LPush(ctx, w.done, task)
		}
		p.LRem(ctx, w.taken, -1, task)
		// The task's trace context is no longer needed: free it now rather
		// than at its expiry.
		p.Del(ctx, traceKey(w.prefix, w.queue, task))
		return nil
	})
	return err
}

// traceKey is where resc-go keeps the W3C traceparent of an item of a list:
// "<prefix>trace:<list>:<item>" (a string with an expiry).
func traceKey(prefix, list, item string) string {
	return prefix + "trace:" + list + ":" + item
}
