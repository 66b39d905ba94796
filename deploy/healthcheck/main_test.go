package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRun: 2xx is healthy (0); another status, a redirect or no server is
// not (1, with the reason); bad usage is 2.
func TestRun(t *testing.T) {
	hold := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ready\n")) })
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready: dial tcp redis:6379: connection refused", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/readyz", http.StatusFound) })
	mux.HandleFunc("/slow", func(http.ResponseWriter, *http.Request) { <-hold })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(hold)
	closed := httptest.NewServer(mux)
	closed.Close()

	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{srv.URL + "/readyz"}, 0, ""},
		{[]string{"-timeout", "5s", srv.URL + "/readyz"}, 0, ""},
		{[]string{srv.URL + "/down"}, 1, "503 Service Unavailable: not ready: dial tcp redis:6379"},
		{[]string{srv.URL + "/moved"}, 1, "302 Found"},
		{[]string{srv.URL + "/nothing"}, 1, "404 Not Found"},
		{[]string{"-timeout", "50ms", srv.URL + "/slow"}, 1, "deadline exceeded"},
		{[]string{closed.URL + "/readyz"}, 1, "connection refused"},
		{[]string{"a", "b"}, 2, "usage"},
		{[]string{"-timeout", "0s", srv.URL}, 2, "usage"},
		{[]string{"-bogus"}, 2, "usage"},
		{[]string{"::not a url"}, 2, "missing protocol scheme"},
	} {
		var stderr strings.Builder
		if code := run(tc.args, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%q: code %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
		if tc.code == 0 && stderr.Len() != 0 {
			t.Errorf("%q: healthy but stderr %q", tc.args, stderr.String())
		}
	}
}
