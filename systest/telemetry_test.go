package systest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/otlptest"
	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// scrape returns the /metrics page at base.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestTelemetryProcess: through the real binary, an event of a fetch rule
// is traced to a real OTLP/HTTP receiver (process, rule, HTTP client,
// commit and send spans in one trace), the task's trace context is stored
// beside it, the fetched service receives the traceparent, and /metrics
// counts it all.
func TestTelemetryProcess(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	recv := otlptest.Start(t)
	headers := make(chan string, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case headers <- r.Header.Get("Traceparent"):
		default:
		}
		_, _ = io.WriteString(w, `{"name": "widget"}`)
	}))
	defer api.Close()
	addr := testutil.FreePort(t)
	p := proctest.Start(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.URL, "OTEL_SERVICE_NAME=resc-it", "OTEL_BSP_SCHEDULE_DELAY=100",
		"RESC_TRACE_CONTEXT_TTL=7m"},
		"run", "--replica-id", "t1", "--http-addr", addr, procConfig(t, srv.URL(), api.URL))
	p.WaitLog(10*time.Second, "leader: replaying")
	if err := rdb.LPush(t.Context(), "in", "prod/7", "acq/1").Err(); err != nil {
		t.Fatal(err)
	}
	p.Eventually(10*time.Second, "the fetch rule's task", listIs(t, rdb, "made/todo", "made/7/widget"))
	p.Eventually(10*time.Second, "the plain rule's task", listIs(t, rdb, "trt/todo", "trt/1"))

	base := "http://" + addr
	metrics := scrape(t, base)
	for _, want := range []string{
		`resc_events_taken_total{queue="in"} 2`,
		`resc_events_handled_total{queue="in"} 2`,
		`resc_tasks_pushed_total{queue="made/todo"} 1`,
		`resc_tasks_pushed_total{queue="trt/todo"} 1`,
		`resc_rule_matches_total{queue="in",rule="enrich",rule_index="1"} 1`,
		`resc_queue_length{list="input",queue="in"} 0`,
		`resc_leader 1`,
		`resc_commit_duration_seconds_count{queue="in"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", metrics)
	}

	tp := rdb.Get(t.Context(), keyspace.TraceContext("resc:", "made/todo", "made/7/widget")).Val()
	m := regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-01$`).FindStringSubmatch(tp)
	if m == nil {
		t.Fatalf("task trace context %q", tp)
	}
	// RESC_TRACE_CONTEXT_TTL reaches the watchers (it was once parsed and
	// then dropped, leaving the 1 h default).
	if ttl := rdb.PTTL(t.Context(), keyspace.TraceContext("resc:", "made/todo", "made/7/widget")).Val(); ttl <= 6*time.Minute || ttl > 7*time.Minute {
		t.Errorf("task trace context TTL %v, want RESC_TRACE_CONTEXT_TTL=7m", ttl)
	}
	p.Stop(10 * time.Second) // flushes the spans
	byName := map[string]otlptest.Span{}
	for _, s := range recv.Spans() {
		if s.TraceID == m[1] {
			byName[s.Name] = s
		}
	}
	process, ok := byName["process in"]
	if !ok {
		t.Fatalf("no process span in the task's trace; received %+v", recv.Spans())
	}
	if process.Service != "resc-it" || process.Attrs["resc.replica"] != "t1" || process.Attrs["messaging.destination.name"] != "in" {
		t.Errorf("process span %+v", process)
	}
	send := byName["send made/todo"]
	if send.SpanID != m[2] || send.ParentID != process.SpanID || send.Attrs["resc.dedup"] != "pushed" {
		t.Errorf("send span %+v, want the stored context's span, child of process, pushed", send)
	}
	rule := byName["rule enrich"]
	if rule.ParentID != process.SpanID {
		t.Errorf("rule span %+v", rule)
	}
	if c := byName["commit"]; c.ParentID != process.SpanID {
		t.Errorf("commit span %+v", c)
	}
	h, ok := byName["HTTP GET"]
	if !ok || h.ParentID != rule.SpanID {
		t.Errorf("HTTP client span %+v (ok %v), want a child of the rule span", h, ok)
	}
	if got, want := <-headers, "00-"+m[1]+"-"+h.SpanID+"-01"; got != want {
		t.Errorf("the fetched service received traceparent %q, want %q", got, want)
	}
}
