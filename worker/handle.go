package worker

import (
	"context"
	"fmt"
	"runtime/debug"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// handle runs q's handler on t under a span continuing the task's trace,
// then completes it or records the failure.
func (s *session) handle(q *queue, t *Task) {
	defer func() { <-s.sem }()
	select {
	case <-s.stopping:
		return // held, not started: handed back, or replayed
	default:
	}
	select {
	case s.run <- struct{}{}:
		defer func() { <-s.run }()
	case <-s.stopping:
		return
	}
	ctx, span := s.startSpan(q, t)
	err := s.call(ctx, q, t)
	if span != nil {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	if s.handlers.Err() != nil && err != nil {
		return // stopped by the worker: handed back or replayed, not a failure
	}
	if err == nil {
		c := propagation.MapCarrier{}
		propagator.Inject(ctx, c)
		t.traceparent = c["traceparent"]
		if s.forget(t, true) {
			s.done[q] <- t // the completer reads on until every send is over
			s.sending.Done()
		}
		return
	}
	if s.forget(t, false) {
		s.fail(q, t, err, trace.SpanContextFromContext(ctx).TraceID())
	}
}

// startSpan returns the handler's context, continuing the task's stored
// trace context, and its span (nil without a TracerProvider: the trace
// context is still carried to the done event).
func (s *session) startSpan(q *queue, t *Task) (context.Context, trace.Span) {
	w := s.w
	ctx := s.handlers
	var start []trace.SpanStartOption
	if t.traceparent != "" {
		parent := propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": t.traceparent})
		if sc := trace.SpanContextFromContext(parent); sc.IsValid() {
			if w.o.TraceLink && w.tracer != nil {
				start = append(start, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: sc}))
			} else {
				ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
			}
		}
	}
	if w.tracer == nil {
		return ctx, nil
	}
	return w.tracer.Start(ctx, "process "+q.name, append(start, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "redis"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", q.name),
			attribute.String("resc.task", t.Body),
			attribute.String("resc.worker", w.o.ID),
			attribute.Int("resc.replays", t.Replays),
			attribute.Int("resc.failures", t.Failures),
		))...)
}

// call runs the handler, a panic turned into an error.
func (s *session) call(ctx context.Context, q *queue, t *Task) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.w.stats.panics.Add(1)
			s.w.log.Error("handler panicked", "queue", q.name, "task", t.Body, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return q.handler(ctx, *t)
}
