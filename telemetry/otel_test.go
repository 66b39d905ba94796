package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resc-go/resc/internal/otlptest"
)

func TestTracesConfigured(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_SERVICE_NAME": "x"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, false},
		{map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, false},
		{map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
	} {
		if got := TracesConfigured(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("TracesConfigured(%v) = %v, want %v", tc.env, got, tc.want)
		}
	}
}

// TestSetupExportsOTLP: with OTEL_EXPORTER_OTLP_ENDPOINT set, spans reach a
// real OTLP/HTTP receiver, named after OTEL_SERVICE_NAME.
func TestSetupExportsOTLP(t *testing.T) {
	recv := otlptest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_SERVICE_NAME", "resc-test")
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	ctx := context.Background()
	tel, err := Setup(ctx, Options{Version: "v0", Replica: "r1"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !tel.Tracing() {
		t.Fatal("tracing off with an OTLP endpoint configured")
	}
	_, span := tel.TracerProvider().Tracer("test").Start(ctx, "process in")
	span.End()
	if err := tel.Shutdown(ctx); err != nil { // flushes the batch
		t.Fatal(err)
	}
	spans := recv.Spans()
	if len(spans) != 1 || spans[0].Service != "resc-test" || spans[0].Name != "process in" {
		t.Errorf("received %+v, want one span process in of resc-test", spans)
	}
}

// TestSetupNoTraces: nothing configured, no span is recorded.
func TestSetupNoTraces(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
	}
	tel, err := Setup(context.Background(), Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "x")
	if tel.Tracing() || span.IsRecording() || span.SpanContext().IsValid() {
		t.Errorf("tracing %v, span recording %v valid %v: want all off", tel.Tracing(), span.IsRecording(), span.SpanContext().IsValid())
	}
}

// TestMetricsScraped: a counter of the meter provider is served in the
// Prometheus format over real HTTP, with the Go runtime metrics.
func TestMetricsScraped(t *testing.T) {
	tel, err := Setup(context.Background(), Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	c, err := tel.MeterProvider().Meter("test").Int64Counter("resc.test.events", metric.WithDescription("events seen"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3, metric.WithAttributes(attribute.String("queue", "in")))
	srv := httptest.NewServer(tel.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	for _, want := range []string{`resc_test_events_total{queue="in"} 3`, "# HELP resc_test_events_total events seen", "go_goroutines "} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q:\n%s", want, text)
		}
	}
}
