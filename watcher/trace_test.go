package watcher

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/fetch"
	"github.com/resc-go/resc/internal/keyspace"
)

// TestTraceTree: the exact span tree of an event whose fetch rule makes two
// tasks, recorded with an in-memory exporter, and the trace contexts stored
// with the tasks and for the event.
func TestTraceTree(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	s, _ := fetchServer(t, 200, `[{"name":"a"},{"name":"b"}]`)
	fr := rule("children", `^trt/(?P<id>\w+)$`, mk("made/${id}/${c.name}", "out", "out-set"))
	fr.Fetch = []config.Fetcher{{URL: s.URL + "/children/${id}", Returns: "c"}}
	h := newHarness(t, []config.Rule{fr}, fetch.New(fetch.Options{Settings: config.FetchSettings{Timeout: 5e9, MaxBody: 1 << 20}, TracerProvider: tp}),
		func(_ *config.Watcher, o *Options) { o.TracerProvider = tp })
	h.start()
	h.push("trt/x")
	h.waitHandled(1)

	spans := exp.GetSpans()
	byID := map[string]string{}
	for _, sp := range spans {
		byID[sp.SpanContext.SpanID().String()] = sp.Name
	}
	var tree []string
	var process tracetest.SpanStub
	for _, sp := range spans {
		parent := byID[sp.Parent.SpanID().String()]
		tree = append(tree, parent+" > "+sp.Name)
		if sp.Name == "process in" {
			process = sp
		}
		if sp.SpanContext.TraceID() != spans[0].SpanContext.TraceID() {
			t.Errorf("span %s in another trace", sp.Name)
		}
	}
	slices.Sort(tree)
	want := []string{
		" > process in",
		"process in > commit",
		"process in > rule children",
		"process in > send out",
		"process in > send out",
		"rule children > HTTP GET",
	}
	if !slices.Equal(tree, want) {
		t.Fatalf("span tree\n%s\nwant\n%s", strings.Join(tree, "\n"), strings.Join(want, "\n"))
	}
	attrs := map[string]string{}
	for _, kv := range process.Attributes {
		attrs[string(kv.Key)] = fmt.Sprint(kv.Value.AsInterface())
	}
	for k, v := range map[string]string{"messaging.destination.name": "in", "messaging.operation.type": "process", "resc.replica": "r1",
		"resc.event": "trt/x", "resc.replays": "0", "resc.outcome": "committed"} {
		if attrs[k] != v {
			t.Errorf("process span %s = %q, want %q", k, attrs[k], v)
		}
	}
	for _, sp := range spans {
		if sp.Name != "send out" {
			continue
		}
		a := map[string]string{}
		for _, kv := range sp.Attributes {
			a[string(kv.Key)] = fmt.Sprint(kv.Value.AsInterface())
		}
		key := keyspace.TraceContext("resc:", "out", a["resc.task"])
		want := "00-" + sp.SpanContext.TraceID().String() + "-" + sp.SpanContext.SpanID().String() + "-01"
		if got := h.rdb.Get(context.Background(), key).Val(); got != want || a["resc.dedup"] != "pushed" || a["resc.set"] != "out-set" {
			t.Errorf("send span %v: stored context %q, want %q", a, got, want)
		}
	}
	if n := h.rdb.Exists(context.Background(), keyspace.TraceContext("resc:", "in", "trt/x")).Val(); n != 0 {
		t.Error("the event's trace context outlived its commit")
	}
}

// TestTraceContinuesStoredContext: an event with a stored trace context
// (its producer's, or an earlier attempt's) and crash replays is handled in
// a span linked to that context (or its child with TraceParent), recording
// the replays.
func TestTraceContinuesStoredContext(t *testing.T) {
	t.Parallel()
	const stored = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, child := range []bool{false, true} {
		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		h := newHarness(t, []config.Rule{rule("plain", `.`, mk("", "plain", ""))}, nil,
			func(_ *config.Watcher, o *Options) { o.TracerProvider, o.TraceParent = tp, child })
		ctx := context.Background()
		h.rdb.Set(ctx, keyspace.TraceContext("resc:", "in", "ev"), stored, 0)
		h.start()
		h.push(keyspace.StampReplays(2, "ev")) // replayed twice after crashes
		h.waitHandled(1)
		// The rules saw the bare event, the fence the stamped entry.
		if got := h.list("plain"); !equal(got, []string{"ev"}) || h.w.stats.Committed.Load() != 1 {
			t.Fatalf("child=%v: plain = %q, committed %d; want the bare event's task, committed once", child, got, h.w.stats.Committed.Load())
		}
		var process tracetest.SpanStub
		for _, sp := range exp.GetSpans() {
			if sp.Name == "process in" {
				process = sp
			}
		}
		replays := ""
		for _, kv := range process.Attributes {
			if kv.Key == "resc.replays" {
				replays = fmt.Sprint(kv.Value.AsInterface())
			}
		}
		if replays != "2" {
			t.Errorf("child=%v: resc.replays = %q, want 2", child, replays)
		}
		if child {
			if process.Parent.SpanID().String() != "b7ad6b7169203331" || process.SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
				t.Errorf("child mode: parent %v", process.Parent)
			}
		} else if len(process.Links) != 1 || process.Links[0].SpanContext.SpanID().String() != "b7ad6b7169203331" || process.Parent.IsValid() {
			t.Errorf("link mode: links %v parent %v", process.Links, process.Parent)
		}
		h.stop()
	}
}

// TestTraceContextsOfEventsDoNotLeak: the trace contexts a replica stores
// for traced events taken without one are all deleted by their commits,
// however fast the commits come (they are stored before dispatch).
func TestTraceContextsOfEventsDoNotLeak(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter())))
	h := newHarness(t, []config.Rule{rule("plain", `.`, mk("", "plain", ""))}, nil,
		func(_ *config.Watcher, o *Options) { o.TracerProvider = tp })
	h.start()
	const n = 2000
	events := make([]string, n)
	for i := range events {
		events[i] = fmt.Sprint("ev/", i)
	}
	h.push(events...)
	h.waitHandled(n)
	keys, err := h.rdb.Keys(context.Background(), "resc:trace:in:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("%d event trace contexts left behind, e.g. %q", len(keys), keys[0])
	}
	if got := len(h.list("plain")); got != n {
		t.Errorf("%d tasks, want %d", got, n)
	}
}

// TestDeadLetterCarriesTraceID: the entry of an event dead-lettered by a
// permanent fetch failure names the trace of its process span, for the
// console's link to Jaeger.
func TestDeadLetterCarriesTraceID(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	s, _ := fetchServer(t, 404, `{}`)
	fr := rule("children", `^trt/(?P<id>\w+)$`, mk("made/${id}", "out", ""))
	fr.Fetch = []config.Fetcher{{URL: s.URL + "/children/${id}", Returns: "c"}}
	h := newHarness(t, []config.Rule{fr}, fetch.New(fetch.Options{Settings: config.FetchSettings{Timeout: 5e9, MaxBody: 1 << 20}, TracerProvider: tp}),
		func(_ *config.Watcher, o *Options) { o.TracerProvider, o.Permanent = tp, fetch.IsPermanent })
	h.start()
	h.push("trt/x")
	h.waitHandled(1)
	e := h.onlyDead()
	var process string
	for _, sp := range exp.GetSpans() {
		if sp.Name == "process in" {
			process = sp.SpanContext.TraceID().String()
		}
	}
	if process == "" || e.TraceID != process {
		t.Errorf("dead letter trace_id %q, process span's trace %q", e.TraceID, process)
	}
}
