package watcher

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strconv"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/rules"
)

// Trace layout of one event (see docs/telemetry.md):
//
//	process <input_queue>       consumer: taking and handling the event
//	├── rule <name>             one per matching rule
//	│   └── HTTP GET            the rule's fetches (otelhttp, in package fetch)
//	├── commit                  the fenced commit script (client, Redis)
//	└── send <queue>            producer: one per task made, with its outcome
//
// The consumer span continues the trace context stored for the event (by
// the producer of the event, or by the replica that took it first, so that
// a replay or a fetch retry stays in the same trace): as a link by default,
// as its parent with Options.TraceParent. Each task's producer span context
// is stored beside the task by the commit that pushes it.

const tracerName = "github.com/resc-go/resc/watcher"

// Span attribute keys of resc's own.
const (
	attrEvent         = attribute.Key("resc.event")
	attrReplica       = attribute.Key("resc.replica")
	attrReplays       = attribute.Key("resc.replays")
	attrFetchAttempts = attribute.Key("resc.fetch_attempts")
	attrRule          = attribute.Key("resc.rule")
	attrTask          = attribute.Key("resc.task")
	attrSet           = attribute.Key("resc.set")
	attrDedup         = attribute.Key("resc.dedup")
	attrTasks         = attribute.Key("resc.tasks")
	attrOutcome       = attribute.Key("resc.outcome")
)

// eventTrace is the trace of one event on its way; nil when the event is
// not traced (tracing off, or not sampled): every method is nil-safe.
type eventTrace struct {
	tracer trace.Tracer
	ctx    context.Context // carries the consumer span
	span   trace.Span
	commit trace.Span
	sends  []trace.Span // one per task, started with the commit
	parent []string     // their traceparents, stored with the tasks
}

// traceInfo is what Redis holds of an event's history, read when it is
// taken: its stored trace context, crash replays (from its entry) and
// fetch attempts.
type traceInfo struct {
	parent   string
	replays  int
	attempts int
}

// readTraceInfo reads, in one pipeline, the trace context and fetch
// attempts of each event; replays are their crash replay counts (nil: all
// 0), carried by their entries. Errors leave the zero info: tracing never
// holds events back.
func (w *Watcher) readTraceInfo(ctx context.Context, events []string, replays []int) []traceInfo {
	infos := make([]traceInfo, len(events))
	pipe := w.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(events))
	attempts := make([]*redis.StringCmd, len(events))
	for i, ev := range events {
		sum := sha1.Sum([]byte(ev))
		field := hex.EncodeToString(sum[:])
		gets[i] = pipe.Get(ctx, keyspace.TraceContext(w.opts.Prefix, w.cfg.InputQueue, ev))
		attempts[i] = pipe.HGet(ctx, w.attempts, field)
	}
	_, _ = pipe.Exec(ctx)
	for i := range events {
		infos[i].parent = gets[i].Val()
		infos[i].attempts = leadingInt(attempts[i].Val())
		if replays != nil {
			infos[i].replays = replays[i]
		}
	}
	return infos
}

// leadingInt reads the count that starts "<count> <...>" values.
func leadingInt(s string) int {
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(s[:end])
	return n
}

// startTrace starts the consumer span of ev. It returns nil when the span
// is not recorded (tracing off or not sampled), and whether the event's own
// trace context must be stored (it had none) so that a replay continues it.
func (w *Watcher) startTrace(work context.Context, ev string, info traceInfo) (*eventTrace, bool) {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String("redis"),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(w.cfg.InputQueue),
			attrEvent.String(short(ev)),
			attrReplica.String(w.opts.Replica),
			attrReplays.Int(info.replays),
			attrFetchAttempts.Int(info.attempts),
		),
	}
	ctx := work
	stored := false
	if info.parent != "" {
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(work,
			propagation.MapCarrier{"traceparent": info.parent}))
		if sc.IsValid() {
			stored = true
			if w.opts.TraceParent {
				ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
			} else {
				opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: sc}))
			}
		}
	}
	ctx, span := w.tracer.Start(ctx, "process "+w.cfg.InputQueue, opts...)
	if !span.IsRecording() {
		span.End()
		return nil, false
	}
	return &eventTrace{tracer: w.tracer, ctx: ctx, span: span}, !stored
}

// traceparent is the W3C traceparent of the span in ctx.
func traceparent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// rule starts the span of one matching rule; end it with endRule.
func (t *eventTrace) rule(r *rules.Rule) (context.Context, trace.Span) {
	if t == nil {
		return nil, nil
	}
	return t.tracer.Start(t.ctx, "rule "+r.Name(), trace.WithAttributes(attrRule.String(r.Name())))
}

// endRule ends a rule span with the number of tasks it made, or its error.
func endRule(span trace.Span, tasks int, err error) {
	if span == nil {
		return
	}
	span.SetAttributes(attrTasks.Int(tasks))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// startCommit starts the commit span and one producer span per task, once
// per event (a commit retried through an outage keeps them).
func (t *eventTrace) startCommit(tasks []rules.Task, commitMode string) {
	if t == nil || t.commit != nil {
		return
	}
	_, t.commit = t.tracer.Start(t.ctx, "commit", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		semconv.DBSystemNameRedis,
		semconv.DBOperationName("EVALSHA"),
		attribute.String("resc.commit.mode", commitMode),
	))
	if commitMode != "commit" {
		return
	}
	t.sends = make([]trace.Span, len(tasks))
	t.parent = make([]string, len(tasks))
	for i, task := range tasks {
		attrs := []attribute.KeyValue{
			semconv.MessagingSystemKey.String("redis"),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
			semconv.MessagingDestinationName(task.Queue),
			attrTask.String(short(task.Task)),
			attrRule.String(task.Rule),
		}
		if task.HasSet {
			attrs = append(attrs, attrSet.String(task.Set))
		}
		ctx, span := t.tracer.Start(t.ctx, "send "+task.Queue, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
		t.sends[i], t.parent[i] = span, traceparent(ctx)
	}
}

// taskParent is the traceparent stored with task i, "" when not traced.
func (t *eventTrace) taskParent(i int) string {
	if t == nil || i >= len(t.parent) {
		return ""
	}
	return t.parent[i]
}

// committed ends the trace of a committed event; pushed has one character
// per task: '1' pushed, '0' skipped by its set.
func (t *eventTrace) committed(pushed string) {
	if t == nil {
		return
	}
	for i, s := range t.sends {
		if i < len(pushed) && pushed[i] == '1' {
			s.SetAttributes(attrDedup.String("pushed"))
		} else {
			s.SetAttributes(attrDedup.String("skipped"))
		}
		s.End()
	}
	t.finish("committed", codes.Unset, "")
}

// end ends the trace of an event that was not committed, saying why.
func (t *eventTrace) end(outcome, why string) {
	if t == nil {
		return
	}
	for _, s := range t.sends {
		s.SetAttributes(attrDedup.String("not sent"))
		s.End()
	}
	t.finish(outcome, codes.Error, why)
}

func (t *eventTrace) finish(outcome string, code codes.Code, why string) {
	if t.commit != nil {
		t.commit.End()
	}
	t.span.SetAttributes(attrOutcome.String(outcome))
	if code == codes.Error {
		t.span.SetStatus(code, why)
	}
	t.span.End()
}
