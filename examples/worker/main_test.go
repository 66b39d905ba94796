package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/redistest"
)

// TestWorkerContinuesTrace: the worker takes a task, removes it from its
// set, works under a span linked to (or child of) the task's stored trace
// context, and atomically pushes the done event with its own trace context
// for resc-go and removes the task from its taken list.
func TestWorkerContinuesTrace(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	const stored = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, child := range []bool{false, true} {
		srv := redistest.Start(t)
		rdb := srv.Client()
		ctx := context.Background()
		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		w := &worker{rdb: rdb, tracer: tp.Tracer("t"), queue: "trt/a/todo", taken: "trt/a/todo/taken/w1", set: "trt/a/todo-set",
			done: "global/done", prefix: "resc:", child: child, ttl: time.Hour,
			work: func(context.Context, string) error { return nil }}
		rdb.LPush(ctx, "trt/a/todo", "trt/a/42")
		rdb.ZAdd(ctx, "trt/a/todo-set", redisZ("trt/a/42"))
		rdb.Set(ctx, keyspace.TraceContext("resc:", "trt/a/todo", "trt/a/42"), stored, time.Hour)
		if err := w.takeOne(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		if got := rdb.LRange(ctx, "global/done", 0, -1).Val(); len(got) != 1 || got[0] != "trt/a/42" {
			t.Errorf("done = %q", got)
		}
		if n := rdb.LLen(ctx, "trt/a/todo/taken/w1").Val() + rdb.ZCard(ctx, "trt/a/todo-set").Val(); n != 0 {
			t.Errorf("taken list or set not emptied: %d", n)
		}
		spans := exp.GetSpans()
		if len(spans) != 1 || spans[0].Name != "process trt/a/todo" {
			t.Fatalf("spans %v", spans)
		}
		s := spans[0]
		if child {
			if s.Parent.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || s.Parent.SpanID().String() != "b7ad6b7169203331" {
				t.Errorf("child mode: parent %v", s.Parent)
			}
		} else if len(s.Links) != 1 || s.Links[0].SpanContext.SpanID().String() != "b7ad6b7169203331" || s.Parent.IsValid() {
			t.Errorf("link mode: links %v parent %v", s.Links, s.Parent)
		}
		if rdb.Exists(ctx, keyspace.TraceContext("resc:", "trt/a/todo", "trt/a/42")).Val() != 0 {
			t.Error("the task's trace context outlived the task")
		}
		done := rdb.Get(ctx, keyspace.TraceContext("resc:", "global/done", "trt/a/42")).Val()
		if !strings.Contains(done, s.SpanContext.TraceID().String()+"-"+s.SpanContext.SpanID().String()) {
			t.Errorf("done event's trace context %q, want the worker span %v", done, s.SpanContext)
		}
	}
}

func redisZ(m string) redis.Z { return redis.Z{Score: 1, Member: m} }
