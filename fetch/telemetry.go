package fetch

import (
	"context"
	"errors"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traced wraps the client's transport so that every HTTP request is a
// client span (otelhttp) in the trace of the ctx given to Fetch, sending
// the W3C traceparent header to the fetched service.
func (c *Client) traced(tp trace.TracerProvider) {
	c.transport = otelhttp.NewTransport(c.transport,
		otelhttp.WithTracerProvider(redactingProvider{tp}),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		// No metrics from otelhttp: the client records its own, per
		// host rather than per URL.
		otelhttp.WithMeterProvider(noop.NewMeterProvider()),
	)
}

// clientMetrics are the instruments of a Client; nil without a meter.
type clientMetrics struct {
	duration metric.Float64Histogram
	retries  metric.Int64Counter
}

func (c *Client) initMetrics() error {
	if c.meter == nil {
		return nil
	}
	d, err1 := c.meter.Float64Histogram("resc.fetch.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of a fetch, its retries and waits included."),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	r, err2 := c.meter.Int64Counter("resc.fetch.retries", metric.WithDescription("HTTP requests retried after a transient failure."))
	state, err3 := c.meter.Int64ObservableGauge("resc.fetch.breaker.state",
		metric.WithDescription("State of the circuit breaker of each host fetched: 0 closed, 1 half-open, 2 open."))
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	c.metrics = &clientMetrics{duration: d, retries: r}
	_, err := c.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		c.mu.RLock()
		defer c.mu.RUnlock()
		for _, b := range c.breakers {
			v := int64(0)
			switch b.cb.State() {
			case gobreaker.StateHalfOpen:
				v = 1
			case gobreaker.StateOpen:
				v = 2
			}
			o.ObserveInt64(state, v, metric.WithAttributes(attribute.String("host", b.host)))
		}
		return nil
	}, state)
	return err
}

// record records a fetch that ended with err, its attempts made.
func (c *Client) record(ctx context.Context, host string, start time.Time, attempts int, err error) {
	m := c.metrics
	if m == nil {
		return
	}
	outcome := "ok"
	var fe *Error
	switch {
	case err == nil:
	case errors.Is(err, ErrCircuitOpen) && attempts == 0:
		outcome = "circuit_open"
	case errors.As(err, &fe) && fe.cancelled:
		outcome = "cancelled"
	case IsPermanent(err):
		outcome = "permanent_failure"
	default:
		outcome = "transient_failure"
	}
	h := attribute.String("host", host)
	m.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(h, attribute.String("outcome", outcome)))
	if attempts > 1 {
		m.retries.Add(ctx, int64(attempts-1), metric.WithAttributes(h))
	}
}

// urlFull is the attribute otelhttp records the request's URL in.
const urlFull = attribute.Key("url.full")

// redactingProvider hands otelhttp tracers whose spans never hold a fetch
// URL's secrets: otelhttp strips a password from url.full but keeps the
// query, where tokens travel (?token=...), and the text of an error can
// quote the whole URL. Every URL attribute and error text goes through
// Redact, like the reasons of dead letters.
type redactingProvider struct{ trace.TracerProvider }

func (p redactingProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return redactingTracer{p.TracerProvider.Tracer(name, opts...)}
}

type redactingTracer struct{ trace.Tracer }

func (t redactingTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, span := t.Tracer.Start(ctx, name, opts...)
	cfg := trace.NewSpanStartConfig(opts...)
	for _, kv := range cfg.Attributes() {
		if kv.Key == urlFull {
			span.SetAttributes(urlFull.String(Redact(kv.Value.AsString())))
		}
	}
	rs := redactingSpan{span}
	return trace.ContextWithSpan(ctx, rs), rs
}

type redactingSpan struct{ trace.Span }

func (s redactingSpan) SetAttributes(kv ...attribute.KeyValue) {
	for i := range kv {
		if kv[i].Key == urlFull {
			kv[i] = urlFull.String(Redact(kv[i].Value.AsString()))
		}
	}
	s.Span.SetAttributes(kv...)
}

func (s redactingSpan) SetStatus(code codes.Code, description string) {
	s.Span.SetStatus(code, redactText(description))
}

func (s redactingSpan) RecordError(err error, opts ...trace.EventOption) {
	if err != nil {
		err = redactedError{err}
	}
	s.Span.RecordError(err, opts...)
}

// redactedError is an error whose text is redacted; errors.Is and As
// still reach the original.
type redactedError struct{ err error }

func (e redactedError) Error() string { return redactText(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }
