package fetch

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestMetrics: against a real failing server, fetch durations are recorded
// per host and outcome, retries per host, and the breaker state per host.
func TestMetrics(t *testing.T) {
	srv := newSwitchable(t)
	reader := sdkmetric.NewManualReader()
	s := breakerSettings()
	s.Retries = 1
	s.BackoffMin, s.BackoffMax = 1, 1
	c := New(Options{Settings: s, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	url := srv.URL + "/x"
	for range 2 { // two transient failures, each retried once: the breaker opens
		if _, err := c.Fetch(t.Context(), url, nil); err == nil {
			t.Fatal("fetch of a failing server succeeded")
		}
	}
	refused(t, c, url, nil, &srv.requests)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	host := "http://" + strings.TrimPrefix(srv.URL, "http://")
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					got[m.Name+" "+attr(p.Attributes, "host")+" "+attr(p.Attributes, "outcome")] = int64(p.Count)
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					got[m.Name+" "+attr(p.Attributes, "host")] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					got[m.Name+" "+attr(p.Attributes, "host")] = p.Value
				}
			}
		}
	}
	want := map[string]int64{
		"resc.fetch.duration " + host + " transient_failure": 2,
		"resc.fetch.duration " + host + " circuit_open":      1,
		"resc.fetch.retries " + host:                         2,
		"resc.fetch.breaker.state " + host:                   2, // open
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

func attr(s attribute.Set, k string) string {
	v, _ := s.Value(attribute.Key(k))
	return v.AsString()
}
