package fetch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/testutil"
)

// breakerSettings have no retry, so that one fetch is one request, and a
// breaker opening after two failures, open for long.
func breakerSettings() config.FetchSettings {
	s := settings
	s.Retries = 0
	s.BreakerFailures = 2
	s.BreakerOpen = time.Hour
	return s
}

// loggedClient returns a client logging at debug level into the returned
// buffer.
func loggedClient(s config.FetchSettings) (*Client, *testutil.Buffer) {
	logs := &testutil.Buffer{}
	return New(Options{Settings: s, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}), logs
}

// switchable is a server answering 500 while failing is true, else {}; it
// counts the requests.
type switchable struct {
	*httptest.Server
	failing  atomic.Bool
	requests atomic.Int32
}

func newSwitchable(t *testing.T) *switchable {
	s := &switchable{}
	s.failing.Store(true)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if s.failing.Load() {
			w.WriteHeader(500)
			return
		}
		io.WriteString(w, `{}`)
	}))
	t.Cleanup(s.Close)
	return s
}

// refused fetches url and checks that the breaker refused it: a transient
// *Error wrapping ErrCircuitOpen, no request made (requests unchanged).
func refused(t *testing.T, c *Client, url string, s *config.FetchSettings, requests *atomic.Int32) {
	t.Helper()
	before := requests.Load()
	_, err := c.Fetch(t.Context(), url, s)
	var fe *Error
	if !errors.Is(err, ErrCircuitOpen) || !errors.As(err, &fe) || fe.Permanent || fe.Attempts != 0 || fe.URL != url {
		t.Fatalf("error %v (%+v), want a transient *Error wrapping ErrCircuitOpen, no attempt", err, fe)
	}
	if n := requests.Load(); n != before {
		t.Errorf("the server got %d requests while the breaker is open", n-before)
	}
}

func TestBreakerOpensAfterFailures(t *testing.T) {
	srv := newSwitchable(t)
	c, logs := loggedClient(breakerSettings())
	url := srv.URL + "/x"
	for i := range 2 {
		_, err := c.Fetch(t.Context(), url, nil)
		if err == nil || IsPermanent(err) || errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("fetch %d: error %v, want a transient failure of the server", i, err)
		}
	}
	for range 3 {
		refused(t, c, url, nil, &srv.requests)
	}
	_, err := c.Fetch(t.Context(), url, nil)
	host := strings.TrimPrefix(srv.URL, "http://")
	if want := "fetch GET " + url + ": circuit open for host http://" + host; err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	if n := strings.Count(logs.String(), "fetch circuit open"); n != 1 || !strings.Contains(logs.String(), "host=http://"+host) {
		t.Errorf("%d log lines for the breaker opening, want 1 naming the host:\n%s", n, logs)
	}
}

func TestBreakerHalfOpenProbe(t *testing.T) {
	srv := newSwitchable(t)
	s := breakerSettings()
	s.BreakerOpen = 50 * time.Millisecond
	c, logs := loggedClient(s)
	url := srv.URL + "/x"
	c.Fetch(t.Context(), url, nil)
	c.Fetch(t.Context(), url, nil)
	refused(t, c, url, nil, &srv.requests)

	// Still failing when the breaker lets its probe through: open again.
	testutil.Eventually(t, "a probe", func() bool {
		c.Fetch(t.Context(), url, nil)
		return srv.requests.Load() == 3
	})
	refused(t, c, url, nil, &srv.requests)

	// Answering again: the next probe closes the breaker.
	srv.failing.Store(false)
	testutil.Eventually(t, "a successful probe", func() bool {
		_, err := c.Fetch(t.Context(), url, nil)
		return err == nil
	})
	if n := srv.requests.Load(); n != 4 {
		t.Errorf("%d requests, want 4: two failures, two probes", n)
	}
	for range 3 {
		if _, err := c.Fetch(t.Context(), url, nil); err != nil {
			t.Fatalf("breaker closed: %v", err)
		}
	}
	log := logs.String()
	for msg, want := range map[string]int{"fetch circuit open": 2, "fetch circuit half-open": 2, "fetch circuit closed": 1} {
		if n := strings.Count(log, msg); n != want {
			t.Errorf("%d log lines %q, want %d:\n%s", n, msg, want, log)
		}
	}
}

// TestBreakerHalfOpenOneProbe: while the probe is in flight, other fetches
// are refused.
func TestBreakerHalfOpenOneProbe(t *testing.T) {
	var requests atomic.Int32
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	var hold atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if !hold.Load() {
			w.WriteHeader(503)
			return
		}
		arrived <- struct{}{}
		<-release
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	defer close(release)
	s := breakerSettings()
	s.BreakerOpen = 50 * time.Millisecond
	c := newClient(t, s)
	c.Fetch(t.Context(), srv.URL, nil)
	c.Fetch(t.Context(), srv.URL, nil)
	hold.Store(true)
	probe := make(chan error, 1)
	testutil.Eventually(t, "the breaker to let a probe through", func() bool {
		go func() {
			_, err := c.Fetch(t.Context(), srv.URL, nil)
			probe <- err
		}()
		select {
		case <-arrived:
			return true
		case err := <-probe:
			if !errors.Is(err, ErrCircuitOpen) {
				t.Fatalf("error %v, want ErrCircuitOpen before the probe", err)
			}
			return false
		}
	})
	_, err := c.Fetch(t.Context(), srv.URL, nil)
	if !errors.Is(err, ErrCircuitOpen) || !strings.Contains(err.Error(), "half-open: waiting for its probes") {
		t.Errorf("error %v during the probe, want a refusal", err)
	}
	release <- struct{}{}
	if err := <-probe; err != nil {
		t.Errorf("probe: %v", err)
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

// TestBreakerCounts: which outcomes count as failures of the host.
func TestBreakerCounts(t *testing.T) {
	tests := []struct {
		name    string
		replies []reply
		open    bool
	}{
		{"two 500s", []reply{{500, ``}, {500, ``}}, true},
		{"two 429s", []reply{{429, ``}, {429, ``}}, true},
		{"404s are the request's fault", []reply{{404, ``}, {404, ``}, {400, ``}}, false},
		{"a 404 answers: the failures are not in a row", []reply{{500, ``}, {404, ``}, {500, ``}}, false},
		{"a success between failures", []reply{{500, ``}, {200, `{}`}, {500, ``}}, false},
		{"invalid JSON is the host's", []reply{{200, `<html>`}, {200, `<html>`}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, append(tt.replies, reply{200, `{}`})...)
			c := newClient(t, breakerSettings())
			for range tt.replies {
				c.Fetch(t.Context(), srv.URL, nil)
			}
			if tt.open {
				refused(t, c, srv.URL, nil, &srv.requests)
			} else if _, err := c.Fetch(t.Context(), srv.URL, nil); err != nil || int(srv.requests.Load()) != len(tt.replies)+1 {
				t.Errorf("error %v, %d requests; want the breaker closed", err, srv.requests.Load())
			}
		})
	}
}

// TestBreakerIgnoresCancellation: fetches stopped by their ctx, during a
// request or by a deadline, are not failures of the host.
func TestBreakerIgnoresCancellation(t *testing.T) {
	srv, arrived, requests := blocking(t)
	s := breakerSettings()
	s.BreakerFailures = 1
	c := newClient(t, s)
	for range 3 {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := c.Fetch(ctx, srv.URL, nil)
			done <- err
		}()
		select {
		case <-arrived:
		case err := <-done:
			t.Fatalf("fetch ended before its request arrived: %v", err)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	}
	sent := int32(3)
	for range 2 {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		_, err := c.Fetch(ctx, srv.URL, nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want context.DeadlineExceeded", err)
		}
		// On a loaded machine the deadline may pass before the request is
		// sent: not a failure of the host either, but no request arrives.
		select {
		case <-arrived:
			sent++
		case <-time.After(2 * time.Second):
		}
	}
	if n := requests.Load(); n != sent {
		t.Errorf("%d requests, want %d: the breaker let every fetch through", n, sent)
	}
	// A real failure opens it.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv.Config.SetKeepAlivesEnabled(false)
	go func() {
		<-arrived
		srv.CloseClientConnections() // the request fails: a connection error
	}()
	if _, err := c.Fetch(ctx, srv.URL, nil); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want a connection error", err)
	}
	refused(t, c, srv.URL, nil, requests)
}

// TestBreakerPerHost: a failing host does not open the breaker of another.
func TestBreakerPerHost(t *testing.T) {
	bad := newSwitchable(t)
	good := newSwitchable(t)
	good.failing.Store(false)
	c := newClient(t, breakerSettings())
	for range 2 {
		c.Fetch(t.Context(), bad.URL, nil)
	}
	refused(t, c, bad.URL+"/other/path?q=1", nil, &bad.requests)
	for i := range 3 {
		if _, err := c.Fetch(t.Context(), good.URL, nil); err != nil {
			t.Fatalf("fetch %d of the good host: %v", i, err)
		}
	}
	if n := good.requests.Load(); n != 3 {
		t.Errorf("good host: %d requests, want 3", n)
	}
	// The same host by another name is another breaker key: localhost.
	other := strings.Replace(bad.URL, "127.0.0.1", "localhost", 1)
	if _, err := c.Fetch(t.Context(), other, nil); errors.Is(err, ErrCircuitOpen) {
		t.Errorf("localhost shares the breaker of 127.0.0.1: %v", err)
	}
}

// TestBreakerStopsRetries: a fetch retrying stops as soon as the breaker of
// its host opens, before or after its wait.
func TestBreakerStopsRetries(t *testing.T) {
	t.Run("before the wait", func(t *testing.T) {
		// /held is answered 500 when the test releases it, /fail at once.
		arrived := make(chan struct{}, 1)
		release := make(chan struct{})
		var requests atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			if r.URL.Path == "/held" {
				arrived <- struct{}{}
				<-release
			}
			w.WriteHeader(500)
		}))
		defer srv.Close()
		s := breakerSettings()
		s.BreakerFailures = 1
		patient := s
		patient.Retries, patient.BackoffMin, patient.BackoffMax = 5, time.Hour, time.Hour // same breaker settings
		c := newClient(t, s)
		done := make(chan error, 1)
		go func() {
			_, err := c.Fetch(t.Context(), srv.URL+"/held", &patient)
			done <- err
		}()
		<-arrived
		c.Fetch(t.Context(), srv.URL+"/fail", nil) // opens the breaker
		close(release)
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the fetch waits to retry with the breaker open")
		}
		want := "fetch GET " + srv.URL + "/held: giving up after 1 attempt, circuit open for host " + srv.URL + ": status 500"
		var fe *Error
		if !errors.As(err, &fe) || err.Error() != want || fe.Permanent || fe.Attempts != 1 || fe.Status != 500 || !errors.Is(err, ErrCircuitOpen) {
			t.Errorf("error %v (%+v), want %q", err, fe, want)
		}
		if n := requests.Load(); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
	t.Run("after the wait", func(t *testing.T) {
		srv := newSwitchable(t)
		s := breakerSettings()
		s.BreakerFailures = 1
		patient := s
		patient.Retries, patient.BackoffMin, patient.BackoffMax = 5, time.Second, time.Second
		c := newClient(t, s)
		done := make(chan error, 1)
		go func() {
			_, err := c.Fetch(t.Context(), srv.URL+"/patient", &patient)
			done <- err
		}()
		// The patient fetch failed once and waits half a second or more;
		// meanwhile another one fails and opens the breaker.
		testutil.Eventually(t, "the first request", func() bool { return srv.requests.Load() == 1 })
		c.Fetch(t.Context(), srv.URL+"/other", nil)
		err := <-done
		if !errors.Is(err, ErrCircuitOpen) || !strings.Contains(err.Error(), "giving up after 1 attempt, circuit open for host") {
			t.Errorf("error %v, want the retries stopped by the breaker", err)
		}
		if n := srv.requests.Load(); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
}

// TestBreakerPerFetcherSettings: fetches with their own breaker settings
// have their own breaker for the host; without a breaker, no refusal.
func TestBreakerPerFetcherSettings(t *testing.T) {
	srv := newSwitchable(t)
	global := breakerSettings()
	global.BreakerFailures = 0 // no breaker
	c := newClient(t, global)
	strict := global
	strict.BreakerFailures = 1
	for range 4 {
		if _, err := c.Fetch(t.Context(), srv.URL, nil); errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("error %v without a breaker", err)
		}
	}
	c.Fetch(t.Context(), srv.URL, &strict)
	refused(t, c, srv.URL, &strict, &srv.requests)
	if _, err := c.Fetch(t.Context(), srv.URL, nil); errors.Is(err, ErrCircuitOpen) {
		t.Errorf("error %v: the fetcher's breaker refused a fetch without breaker", err)
	}
	if n := srv.requests.Load(); n != 6 {
		t.Errorf("%d requests, want 6", n)
	}
}

// TestBreakerNotForInvalidURLs: a URL that cannot be fetched fails
// permanently, before any breaker, and opens none.
func TestBreakerNotForInvalidURLs(t *testing.T) {
	s := breakerSettings()
	s.BreakerFailures = 1
	c := newClient(t, s)
	for range 3 {
		for _, url := range []string{"ftp://h/x", "http:///x", "http://h/%zz"} {
			if _, err := c.Fetch(t.Context(), url, nil); !IsPermanent(err) || errors.Is(err, ErrCircuitOpen) {
				t.Errorf("Fetch(%q): %v, want a permanent failure", url, err)
			}
		}
	}
	if len(c.breakers) != 0 {
		t.Errorf("%d breakers, want none", len(c.breakers))
	}
}
