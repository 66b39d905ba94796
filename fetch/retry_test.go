package fetch

import (
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
)

// timedServer answers with the replies in turn (the last one for every
// request after) and records when each request arrived.
type timedServer struct {
	*httptest.Server
	mu    sync.Mutex
	times []time.Time
}

type timedReply struct {
	status     int
	retryAfter string
	body       string
}

func timed(t *testing.T, replies ...timedReply) *timedServer {
	s := &timedServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.times = append(s.times, time.Now())
		rp := replies[min(len(s.times), len(replies))-1]
		s.mu.Unlock()
		if rp.retryAfter != "" {
			w.Header().Set("Retry-After", rp.retryAfter)
		}
		w.WriteHeader(rp.status)
		io.WriteString(w, rp.body)
	}))
	t.Cleanup(s.Close)
	return s
}

// gaps are the durations between the requests.
func (s *timedServer) gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gaps []time.Duration
	for i := 1; i < len(s.times); i++ {
		gaps = append(gaps, s.times[i].Sub(s.times[i-1]))
	}
	return gaps
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		backoffMax time.Duration
		lo, hi     time.Duration // bounds of the wait seen by the server
	}{
		{"honoured on 503", 503, "1", 5 * time.Second, time.Second, 3 * time.Second},
		{"honoured on 429", 429, "1", 5 * time.Second, time.Second, 3 * time.Second},
		{"capped at backoff_max_ms", 429, "3600", 200 * time.Millisecond, 200 * time.Millisecond, 2 * time.Second},
		{"date far ahead capped", 503, "Fri, 31 Dec 2100 23:59:59 GMT", 200 * time.Millisecond, 200 * time.Millisecond, 2 * time.Second},
		// The backoff is 1 to 2 ms; the bound leaves room for a loaded
		// machine while staying far below any honoured Retry-After.
		{"shorter than the backoff: the backoff", 500, "0", 5 * time.Second, 0, 900 * time.Millisecond},
		{"invalid: the backoff", 503, "soon", 5 * time.Second, 0, 900 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := timed(t, timedReply{tt.status, tt.retryAfter, ``}, timedReply{200, "", `{"a":"b"}`})
			s := settings
			s.BackoffMin, s.BackoffMax = time.Millisecond, tt.backoffMax
			results, err := newClient(t, s).Fetch(t.Context(), srv.URL, nil)
			if err != nil || len(results) != 1 {
				t.Fatalf("Fetch = %v, %v; want one result after a retry", results, err)
			}
			gaps := srv.gaps()
			if len(gaps) != 1 || gaps[0] < tt.lo || gaps[0] > tt.hi {
				t.Errorf("waits %v between the requests, want one between %v and %v", gaps, tt.lo, tt.hi)
			}
		})
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{"Mon, 23 Nov 2026 10:01:30 GMT", 90 * time.Second, true},
		{"Monday, 23-Nov-26 10:00:05 GMT", 5 * time.Second, true},
		{"Mon, 23 Nov 2026 09:00:00 GMT", 0, true},
		{"99999999999999999999", 0, false},
		{"9999999999999", math.MaxInt64, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		resp := &http.Response{Header: http.Header{}}
		if tt.header != "" {
			resp.Header.Set("Retry-After", tt.header)
		}
		if got, ok := retryAfter(resp, now); got != tt.want || ok != tt.ok {
			t.Errorf("Retry-After %q: %v, %v; want %v, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := retryAfter(nil, now); ok {
		t.Error("retryAfter(nil) is ok")
	}
}

func TestRetriesExhausted(t *testing.T) {
	srv := timed(t, timedReply{status: 503})
	s := settings
	s.Retries, s.BackoffMin, s.BackoffMax = 2, 20*time.Millisecond, 40*time.Millisecond
	_, err := newClient(t, s).Fetch(t.Context(), srv.URL, nil)
	fe, ok := err.(*Error)
	want := "fetch GET " + srv.URL + ": giving up after 3 attempts: status 503"
	if !ok || fe.Permanent || fe.Attempts != 3 || fe.Status != 503 || err.Error() != want {
		t.Fatalf("error %v (%+v), want a transient *Error %q", err, fe, want)
	}
	// Jittered exponential: between half and all of 20 ms, then of 40 ms.
	gaps := srv.gaps()
	if len(gaps) != 2 || gaps[0] < 10*time.Millisecond || gaps[1] < 20*time.Millisecond {
		t.Errorf("waits %v, want at least 10 ms then 20 ms", gaps)
	}
}

// TestPerFetchSettings: the settings of a fetch override the client's.
func TestPerFetchSettings(t *testing.T) {
	t.Run("retries", func(t *testing.T) {
		srv := serve(t, reply{500, ``})
		c := newClient(t, config.FetchSettings{Retries: 0, BackoffMin: time.Millisecond, BackoffMax: time.Millisecond})
		c.Fetch(t.Context(), srv.URL, nil)
		if n := srv.requests.Load(); n != 1 {
			t.Errorf("client's settings: %d requests, want 1", n)
		}
		s := config.FetchSettings{Retries: 2, BackoffMin: time.Millisecond, BackoffMax: time.Millisecond}
		_, err := c.Fetch(t.Context(), srv.URL, &s)
		if fe, ok := err.(*Error); !ok || fe.Attempts != 3 {
			t.Errorf("error %v, want 3 attempts", err)
		}
		if n := srv.requests.Load(); n != 4 {
			t.Errorf("fetch's settings: %d requests, want 1 + 3", n)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		srv, _, _ := blocking(t)
		c := newClient(t, config.FetchSettings{Timeout: time.Hour})
		start := time.Now()
		_, err := c.Fetch(t.Context(), srv.URL, &config.FetchSettings{Timeout: 50 * time.Millisecond})
		if err == nil || IsPermanent(err) || time.Since(start) > 10*time.Second {
			t.Errorf("error %v after %v, want a transient timeout", err, time.Since(start))
		}
	})
	t.Run("body limit", func(t *testing.T) {
		srv := serve(t, reply{200, `{"a": "0123456789"}`})
		c := newClient(t, config.FetchSettings{MaxBody: 1 << 10})
		if _, err := c.Fetch(t.Context(), srv.URL, nil); err != nil {
			t.Errorf("client's limit: %v", err)
		}
		if _, err := c.Fetch(t.Context(), srv.URL, &config.FetchSettings{MaxBody: 10}); !IsPermanent(err) {
			t.Errorf("fetch's limit: %v, want a permanent failure", err)
		}
	})
}

// TestFailureKeepsIdleConnections: a failed fetch does not close the idle
// connections (retryablehttp closes its client's after each failure).
func TestFailureKeepsIdleConnections(t *testing.T) {
	var conns, requests atomic.Int32
	statuses := []int{404, 200, 500, 200}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(statuses[(requests.Add(1)-1)%4])
		io.WriteString(w, `{}`)
	}))
	srv.Config.ConnState = countNew(&conns)
	srv.Start()
	defer srv.Close()
	c := newClient(t, config.FetchSettings{Retries: 0})
	for i, want := range []bool{false, true, false, true} {
		if _, err := c.Fetch(t.Context(), srv.URL, nil); (err == nil) != want {
			t.Fatalf("fetch %d: error %v", i, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 4 fetches in a row, want 1", n)
	}
}

// TestIdleConnectionsReused: concurrent fetches to a host keep their
// connections for the next ones (Go's default keeps 2 per host).
func TestIdleConnectionsReused(t *testing.T) {
	const width = 32
	var conns, arrived atomic.Int32
	rounds := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := arrived.Add(1)
		round := rounds[(n-1)/width]
		if n%width == 0 {
			close(round) // all of this round are in flight at once
		}
		<-round
		io.WriteString(w, `{}`)
	}))
	srv.Config.ConnState = countNew(&conns)
	srv.Start()
	defer srv.Close()
	c := newClient(t, config.FetchSettings{})
	for range 2 {
		var wg sync.WaitGroup
		for range width {
			wg.Go(func() {
				if _, err := c.Fetch(t.Context(), srv.URL, nil); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if n := conns.Load(); n > width+width/4 {
		t.Errorf("%d connections for 2 rounds of %d concurrent fetches, want about %d", n, width, width)
	}
}

// countNew is a ConnState hook counting the connections a server accepts.
func countNew(n *atomic.Int32) func(net.Conn, http.ConnState) {
	return func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			n.Add(1)
		}
	}
}
