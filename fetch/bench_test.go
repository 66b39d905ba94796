package fetch

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
)

// serviceLatency is how long the benchmarks' service takes to answer.
const serviceLatency = 10 * time.Millisecond

// BenchmarkFetchConcurrent measures one client fetching from a real local
// HTTP server that answers after 10 ms, with many fetches in flight (the
// watchers' fetch_concurrency). Reports fetches per second (events/s, one
// fetch per event) and the connections the server accepted: about one per
// worker when idle connections are kept for reuse.
func BenchmarkFetchConcurrent(b *testing.B) {
	for _, workers := range []int{64, 256, 1024} {
		b.Run(fmt.Sprintf("in_flight=%d", workers), func(b *testing.B) {
			var conns atomic.Int32
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(serviceLatency)
				io.WriteString(w, `[{"processId": 634876914, "productId": "5ab7e7dc00000040"}]`)
			}))
			srv.Config.ConnState = countNew(&conns)
			srv.Start()
			defer srv.Close()
			c := New(Options{Settings: config.DefaultFetchSettings()})
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range workers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						if _, err := c.Fetch(b.Context(), fmt.Sprintf("%s/children/%d", srv.URL, i), nil); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			b.ReportMetric(float64(conns.Load()), "conns")
		})
	}
}
