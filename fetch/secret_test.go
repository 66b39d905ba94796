package fetch

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/resc-go/resc/internal/testutil"
)

// TestSecretsStayOutOfTelemetry: a fetch URL carrying a password and a
// query token, fetched successfully, with a retried failure, and from a
// server that is gone: neither secret appears in the client's logs, its
// error, the spans (attributes, events, status) or the metrics' labels.
func TestSecretsStayOutOfTelemetry(t *testing.T) {
	const password, token = "pw-PLANTED-1", "tok-PLANTED-2"
	fail := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/flaky" && fail {
			fail = false
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer srv.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()

	logs := &testutil.Buffer{}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	reader := sdkmetric.NewManualReader()
	s := breakerSettings()
	s.Retries, s.BackoffMin, s.BackoffMax = 1, 1, 1
	c := New(Options{Settings: s, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		TracerProvider: tp, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	secretURL := func(base, path string) string {
		return strings.Replace(base, "http://", "http://user:"+password+"@", 1) + path + "?id=7&token=" + token
	}
	var seen []string
	if _, err := c.Fetch(t.Context(), secretURL(srv.URL, "/ok"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(t.Context(), secretURL(srv.URL, "/flaky"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(t.Context(), secretURL(goneURL, "/x"), nil); err == nil {
		t.Fatal("fetch of a closed server succeeded")
	} else {
		seen = append(seen, "error: "+err.Error())
	}
	seen = append(seen, "logs: "+logs.String())
	spans := exp.GetSpans()
	if len(spans) < 3 {
		t.Fatalf("%d spans recorded, want at least 3", len(spans))
	}
	for _, sp := range spans {
		seen = append(seen, "span "+sp.Name+": "+fmt.Sprint(sp.Attributes)+" "+fmt.Sprint(sp.Events)+" "+sp.Status.Description)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	seen = append(seen, fmt.Sprintf("metrics: %+v", rm.ScopeMetrics))
	all := strings.Join(seen, "\n")
	if !strings.Contains(all, "/flaky") || !strings.Contains(all, "url.full") {
		t.Fatalf("the telemetry checked does not show the fetches at all:\n%s", all)
	}
	for _, secret := range []string{password, token} {
		for _, line := range seen {
			if strings.Contains(line, secret) {
				t.Errorf("secret %q shown in %s", secret, line)
			}
		}
	}
}
