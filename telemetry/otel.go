package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Options describe the process to its telemetry.
type Options struct {
	// ServiceName is service.name unless OTEL_SERVICE_NAME or
	// OTEL_RESOURCE_ATTRIBUTES say otherwise. Default "resc".
	ServiceName string
	// Version is service.version.
	Version string
	// Replica is service.instance.id: the replica id.
	Replica string
	// Getenv reads the environment; default os.Getenv (tests replace it).
	Getenv func(string) string
}

// Telemetry holds the process' OpenTelemetry providers: traces exported as
// the OTEL_* variables say (none when they say nothing), metrics served in
// the Prometheus format by Handler. Create it with Setup; Shutdown flushes.
type Telemetry struct {
	tp       trace.TracerProvider
	mp       *sdkmetric.MeterProvider
	handler  http.Handler
	tracing  bool
	shutdown []func(context.Context) error
}

// TracesConfigured reports whether the environment asks for traces:
// OTEL_TRACES_EXPORTER set to something else than "none", or an OTLP
// endpoint set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and OTEL_SDK_DISABLED not "true".
// Tracing is off by default: a replica with nothing configured exports
// nothing and spends nothing on spans.
func TracesConfigured(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" {
		return e != "none"
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup creates the providers. Traces: when TracesConfigured, a batching
// tracer provider whose exporter, protocol (http/protobuf by default, or
// grpc), endpoint, headers and sampler come from the standard OTEL_*
// variables; otherwise a no-op provider. It also installs the W3C trace
// context propagator as the global one. Metrics: always, in a registry of
// their own with the Go runtime and process collectors.
func Setup(ctx context.Context, o Options, log *slog.Logger) (*Telemetry, error) {
	if o.ServiceName == "" {
		o.ServiceName = "resc"
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	attrs := []resource.Option{
		resource.WithAttributes(semconv.ServiceName(o.ServiceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
		resource.WithAttributes(semconv.ServiceVersion(o.Version)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
	}
	if o.Replica != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceInstanceID(o.Replica)))
	}
	res, err := resource.New(ctx, attrs...)
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}

	t := &Telemetry{tp: noop.NewTracerProvider()}
	otel.SetTextMapPropagator(propagation.TraceContext{})
	if TracesConfigured(o.Getenv) {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: trace exporter (OTEL_* variables): %w", err)
		}
		// The sampler comes from OTEL_TRACES_SAMPLER and
		// OTEL_TRACES_SAMPLER_ARG (the SDK reads them), parent-based
		// always-on by default.
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		t.tp, t.tracing = tp, true
		t.shutdown = append(t.shutdown, tp.Shutdown)
		log.Info("traces exported", "exporter", exporterName(o.Getenv), "protocol", orDefault(o.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf"))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	t.shutdown = append(t.shutdown, t.mp.Shutdown)
	t.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPromLogger{log}})
	return t, nil
}

func exporterName(getenv func(string) string) string {
	return orDefault(getenv("OTEL_TRACES_EXPORTER"), "otlp")
}

func orDefault(s, def string) string {
	if s = strings.TrimSpace(s); s != "" {
		return s
	}
	return def
}

// Tracing reports whether spans are recorded and exported. Code that
// writes trace contexts to Redis asks it first.
func (t *Telemetry) Tracing() bool { return t.tracing }

// TracerProvider returns the tracer provider (a no-op one when tracing is
// off).
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// MeterProvider returns the meter provider whose metrics Handler serves.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.mp }

// Handler serves the metrics in the Prometheus text format (/metrics).
func (t *Telemetry) Handler() http.Handler { return t.handler }

// Shutdown flushes the spans not yet exported and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		if err := f(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}

// slogPromLogger routes promhttp's errors to the logger.
type slogPromLogger struct{ log *slog.Logger }

func (l slogPromLogger) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }
