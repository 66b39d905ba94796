package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestTreatments: a known plant answers a JSON array of objects whose kind
// is a string (what the demo's make entry uses), the same on every call; an
// unknown plant is a 404, which resc-go treats as a permanent failure.
func TestTreatments(t *testing.T) {
	srv := httptest.NewServer(newHandler(noop.NewTracerProvider(), 0))
	defer srv.Close()
	get := func(path string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
			t.Fatalf("%s: body is not JSON: %v", path, err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", path, ct)
		}
		return resp.StatusCode, raw
	}
	code, body := get("/plants/plantA/products/42/treatments")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var ts []map[string]any
	if err := json.Unmarshal(body, &ts); err != nil {
		t.Fatalf("not an array of objects: %s", body)
	}
	if len(ts) < 1 || len(ts) > 3 {
		t.Errorf("%d treatments: %s", len(ts), body)
	}
	for _, tr := range ts {
		if k, ok := tr["kind"].(string); !ok || k == "" {
			t.Errorf("kind is not a non-empty string: %s", body)
		}
	}
	if _, again := get("/plants/plantA/products/42/treatments"); string(again) != string(body) {
		t.Errorf("not deterministic: %s then %s", body, again)
	}
	if code, body := get("/plants/plantZ/products/42/treatments"); code != http.StatusNotFound {
		t.Errorf("unknown plant: status %d: %s", code, body)
	}
}

// TestTreatmentsVary: products get different treatments, each kind at most
// once and in the order of kinds.
func TestTreatmentsVary(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range []string{"1", "2", "3", "4", "5", "6", "7", "8", "42", "abc"} {
		ts := treatments("plantB", p)
		var names []string
		for _, tr := range ts {
			names = append(names, tr.Kind)
			if tr.Minutes < 1 || tr.Minutes > 16 {
				t.Errorf("%s: minutes %d", p, tr.Minutes)
			}
		}
		last := -1
		for _, n := range names {
			i := slices.Index(kinds, n)
			if i <= last {
				t.Errorf("%s: %v not a subsequence of %v", p, names, kinds)
			}
			last = i
		}
		seen[strings.Join(names, ",")] = true
	}
	if len(seen) < 3 {
		t.Errorf("only %d distinct answers over 10 products", len(seen))
	}
	if !reflect.DeepEqual(treatments("plantA", "42"), treatments("plantA", "42")) {
		t.Error("not deterministic")
	}
}

// TestServerSpanContinuesTrace: the request's traceparent (what resc-go's
// fetch sends) becomes the parent of the API's server span, named after the
// route; /healthz makes no span.
func TestServerSpanContinuesTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	srv := httptest.NewServer(newHandler(tp, 0))
	defer srv.Close()
	for _, path := range []string{"/healthz", "/plants/plantC/products/7/treatments"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1 (none for /healthz): %v", len(spans), spans)
	}
	s := spans[0]
	if s.Name != "GET /plants/{plant}/products/{product}/treatments" {
		t.Errorf("span name %q", s.Name)
	}
	if s.SpanKind != trace.SpanKindServer {
		t.Errorf("span kind %v", s.SpanKind)
	}
	if s.Parent.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || s.Parent.SpanID().String() != "b7ad6b7169203331" || !s.Parent.IsRemote() {
		t.Errorf("parent %v: the incoming traceparent is not continued", s.Parent)
	}
}
