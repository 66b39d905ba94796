package watcher

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/fetch"
)

// BenchmarkWatcherFetch is BenchmarkWatcher for a fetch rule: b.N events
// queued, then taken, fetched from a real local HTTP server that answers
// after 10 ms, made and committed, on one replica. Each sub-benchmark sets
// fetch_concurrency (concurrency is twice it, so that fetches are the
// bound). Reports events/s.
func BenchmarkWatcherFetch(b *testing.B) {
	for _, fc := range []int{64, 256, 1024} {
		b.Run(fmt.Sprintf("fetch_concurrency=%d", fc), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(10 * time.Millisecond) // the service's latency
				io.WriteString(w, `[{"id": "c1"}]`)
			}))
			defer srv.Close()
			r := rule("children", `^acq/(?P<process_id>\w+)/(?P<product_id>\d+)$`,
				mk("trt/${process_id}/${child.id}/${product_id}", "trt/${process_id}/todo", "trt/${process_id}/todo-set"))
			r.Fetch = []config.Fetcher{{URL: srv.URL + "/products/${product_id}/children", Returns: "child"}}
			h := newHarness(b, []config.Rule{r}, fetch.New(fetch.Options{Settings: config.DefaultFetchSettings()}), func(w *config.Watcher, o *Options) {
				w.FetchConcurrency, w.Concurrency = fc, 2*fc
				o.Logger = slog.New(slog.DiscardHandler)
			})
			ctx := context.Background()
			const chunk = 1000
			events := make([]any, 0, chunk)
			for i := range b.N {
				events = append(events, "acq/p"+strconv.Itoa(i%100)+"/"+strconv.Itoa(i))
				if len(events) == chunk || i == b.N-1 {
					if err := h.rdb.LPush(ctx, "in", events...).Err(); err != nil {
						b.Fatal(err)
					}
					events = events[:0]
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			h.start()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for h.w.stats.Committed.Load() < int64(b.N) {
				select {
				case err := <-h.done:
					b.Fatalf("watcher stopped: %v", err)
				case <-tick.C:
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			// Every event made its task: events 0, 100, 200... into trt/p0/todo.
			if n, want := len(h.list("trt/p0/todo")), (b.N+99)/100; n != want {
				b.Errorf("trt/p0/todo has %d tasks, want %d", n, want)
			}
			h.stop()
		})
	}
}
