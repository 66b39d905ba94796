package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
)

// newClient returns a client with settings s.
func newClient(t *testing.T, s config.FetchSettings) *Client {
	t.Helper()
	return New(Options{Settings: s})
}

// settings have short backoff waits, so that retries take milliseconds, and
// no breaker.
var settings = config.FetchSettings{Timeout: 5 * time.Second, Retries: 3, MaxBody: 1 << 20,
	BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond}

// server serves the replies in turn, the last one for every request after,
// and counts the requests.
type server struct {
	*httptest.Server
	requests atomic.Int32
}

type reply struct {
	status int
	body   string
}

func serve(t *testing.T, replies ...reply) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.requests.Add(1))
		rp := replies[min(n, len(replies))-1]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rp.status)
		io.WriteString(w, rp.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestFetchResults(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []map[string]string
	}{
		{
			name: "object",
			body: `{"id": "a/1", "name": "été"}`,
			want: []map[string]string{{"id": "a/1", "name": "été"}},
		},
		{
			name: "numbers as written",
			body: `{"n": 634876914, "f": 1.50, "e": 1e3, "neg": -0.0, "big": 123456789012345678901234567890}`,
			want: []map[string]string{{"n": "634876914", "f": "1.50", "e": "1e3", "neg": "-0.0", "big": "123456789012345678901234567890"}},
		},
		{
			name: "other properties ignored",
			body: `{"s": "x", "b": true, "z": null, "a": [1, "2"], "o": {"k": "v"}}`,
			want: []map[string]string{{"s": "x"}},
		},
		{
			name: "array of objects",
			body: "[{\"a\": \"1\"}, {\"a\": \"2\", \"b\": 3}, {}]\r\n",
			want: []map[string]string{{"a": "1"}, {"a": "2", "b": "3"}, {}},
		},
		{
			name: "empty array",
			body: `[]`,
			want: []map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serve(t, reply{200, tt.body})
			got, err := newClient(t, settings).Fetch(t.Context(), s.URL+"/x?id=1", nil)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("results = %q, want %q", got, tt.want)
			}
			if n := s.requests.Load(); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestFetchStatus(t *testing.T) {
	tests := []struct {
		name      string
		replies   []reply
		retries   int
		requests  int32
		permanent bool
		status    int
		msg       string // the error's text after "fetch GET <url>: "; "" for success
	}{
		{"404 not retried", []reply{{404, `{}`}}, 3, 1, true, 404, "status 404"},
		{"400 not retried", []reply{{400, `{}`}}, 3, 1, true, 400, "status 400"},
		{"403 not retried", []reply{{403, `{}`}}, 3, 1, true, 403, "status 403"},
		{"304 not retried", []reply{{304, ``}}, 3, 1, true, 304, "status 304"},
		{"500 then 200", []reply{{500, ``}, {200, `{"a":"b"}`}}, 3, 2, false, 0, ""},
		{"429 retried", []reply{{429, ``}, {429, ``}, {200, `{"a":"b"}`}}, 3, 3, false, 0, ""},
		{"408 retried", []reply{{408, ``}, {200, `{"a":"b"}`}}, 3, 2, false, 0, ""},
		{"501 retried", []reply{{501, ``}, {200, `{"a":"b"}`}}, 3, 2, false, 0, ""},
		{"503 then 404", []reply{{503, ``}, {404, ``}}, 3, 2, true, 404, "status 404"},
		{"500 forever", []reply{{500, `oops`}}, 3, 4, false, 500, "giving up after 4 attempts: status 500"},
		{"500 without retries", []reply{{500, ``}}, 0, 1, false, 500, "giving up after 1 attempt: status 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serve(t, tt.replies...)
			st := settings
			st.Retries = tt.retries
			url := s.URL + "/item/7"
			results, err := newClient(t, st).Fetch(t.Context(), url, nil)
			if n := s.requests.Load(); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
			if tt.msg == "" {
				if err != nil || len(results) != 1 || results[0]["a"] != "b" {
					t.Fatalf("Fetch = %v, %v; want one result", results, err)
				}
				return
			}
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T), want an *Error", err, err)
			}
			if results != nil {
				t.Errorf("results %v with an error", results)
			}
			if fe.URL != url || fe.Status != tt.status || fe.Permanent != tt.permanent || IsPermanent(err) != tt.permanent || fe.Attempts != int(tt.requests) {
				t.Errorf("error %+v, want status %d, permanent %v, %d attempts", fe, tt.status, tt.permanent, tt.requests)
			}
			if want := "fetch GET " + url + ": " + tt.msg; err.Error() != want {
				t.Errorf("error text\n%s\nwant\n%s", err, want)
			}
		})
	}
}

func TestFetchUnexpectedContent(t *testing.T) {
	tests := []struct {
		name, body, msg string
	}{
		{"invalid JSON", `{"a": `, `unexpected content: invalid JSON: unexpected EOF (body "{\"a\": ")`},
		{"empty body", ``, `unexpected content: invalid JSON: EOF (body "")`},
		{"HTML", `<html>`, `unexpected content: invalid JSON: invalid character '<'`},
		{"number", `42`, `unexpected content: a number, not an object or an array of objects (body "42")`},
		{"string", `"x"`, `a string, not an object`},
		{"null", `null`, `null, not an object`},
		{"array of numbers", `[{"a":1}, 2]`, `element 1 of the array is a number, not an object`},
		{"array of arrays", `[[]]`, `element 0 of the array is an array, not an object`},
		{"two values", `{} {}`, `more than one JSON value`},
		{"trailing garbage", `{}x`, `more than one JSON value`},
		{"long body cut", `{"a": "` + strings.Repeat("é", 100), `(body "{\"a\": \"` + strings.Repeat("é", 28) + `"...)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serve(t, reply{200, tt.body})
			_, err := newClient(t, settings).Fetch(t.Context(), s.URL, nil)
			if !IsPermanent(err) || !errors.Is(err, ErrUnexpectedContent) {
				t.Fatalf("error %v, want a permanent unexpected content", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if n := s.requests.Load(); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestFetchMaxBody(t *testing.T) {
	body := `{"a": "` + strings.Repeat("x", 100) + `"}`
	tests := []struct {
		name    string
		chunked bool // no Content-Length: the limit is found while reading
		msg     string
	}{
		{"content length", false, "response body of 109 bytes exceeds the limit of 64 bytes"},
		{"chunked", true, "response body exceeds the limit of 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var requests atomic.Int32
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				if tt.chunked {
					w.(http.Flusher).Flush()
				}
				io.WriteString(w, body)
			}))
			defer s.Close()
			st := settings
			st.MaxBody = 64
			_, err := newClient(t, st).Fetch(t.Context(), s.URL, nil)
			if !IsPermanent(err) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v, want permanent %q", err, tt.msg)
			}
			if n := requests.Load(); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
	// Exactly the limit is fine.
	s := serve(t, reply{200, body})
	st := settings
	st.MaxBody = int64(len(body))
	if _, err := newClient(t, st).Fetch(t.Context(), s.URL, nil); err != nil {
		t.Errorf("body of exactly MaxBody: %v", err)
	}
}

// blocking serves requests that wait until release is closed (or the client
// goes away), signalling each arrival on arrived.
func blocking(t *testing.T) (s *httptest.Server, arrived chan struct{}, requests *atomic.Int32) {
	t.Helper()
	arrived = make(chan struct{}, 16)
	release := make(chan struct{})
	requests = new(atomic.Int32)
	s = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(500)
	}))
	t.Cleanup(func() { close(release); s.Close() })
	return s, arrived, requests
}

func TestFetchCancelDuringRequest(t *testing.T) {
	s, arrived, requests := blocking(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := newClient(t, settings).Fetch(ctx, s.URL, nil)
		done <- err
	}()
	<-arrived
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || IsPermanent(err) {
			t.Errorf("error %v, want a transient context.Canceled", err)
		}
		var fe *Error
		if !errors.As(err, &fe) || fe.URL != s.URL {
			t.Errorf("error %v, want an *Error for %s", err, s.URL)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Fetch still running 5 s after its ctx was cancelled")
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestFetchCancelDuringBackoff(t *testing.T) {
	var requests atomic.Int32
	arrived := make(chan struct{}, 16)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(503)
		arrived <- struct{}{}
	}))
	defer s.Close()
	st := settings
	st.BackoffMin, st.BackoffMax = time.Hour, time.Hour // the retry waits until ctx is cancelled
	c := newClient(t, st)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.Fetch(ctx, s.URL, nil)
		done <- err
	}()
	<-arrived
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || IsPermanent(err) {
			t.Errorf("error %v, want a transient context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Fetch still waiting 5 s after its ctx was cancelled")
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestFetchTimeoutRetried(t *testing.T) {
	// The first request hangs past the timeout, the second is answered.
	release := make(chan struct{})
	defer close(release)
	var requests atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		io.WriteString(w, `{"a": "b"}`)
	}))
	defer s.Close()
	st := settings
	st.Timeout = 100 * time.Millisecond
	results, err := newClient(t, st).Fetch(t.Context(), s.URL, nil)
	if err != nil || len(results) != 1 {
		t.Fatalf("Fetch = %v, %v; want one result after a retry", results, err)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestFetchConnectionRefused(t *testing.T) {
	s := httptest.NewServer(http.NotFoundHandler())
	url := s.URL
	s.Close() // nothing listens there any more
	st := settings
	st.Retries = 2
	_, err := newClient(t, st).Fetch(t.Context(), url+"/x", nil)
	if err == nil || IsPermanent(err) {
		t.Fatalf("error %v, want a transient failure", err)
	}
	if want := "fetch GET " + url + "/x: giving up after 3 attempts: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", err, want)
	}
}

func TestFetchInvalidURL(t *testing.T) {
	tests := []string{"http://h/%zz?token=secret", "ftp://h/x", "://nothing"}
	for _, url := range tests {
		_, err := newClient(t, settings).Fetch(t.Context(), url, nil)
		if !IsPermanent(err) {
			t.Errorf("Fetch(%q): %v, want a permanent failure", url, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Fetch(%q): error %q shows the query", url, err)
		}
	}
}

func TestErrorRedacted(t *testing.T) {
	s := serve(t, reply{404, ``})
	url := strings.Replace(s.URL, "http://", "http://user:hunter2@", 1) + "/x?token=secret&id=7"
	_, err := newClient(t, settings).Fetch(t.Context(), url, nil)
	want := "fetch GET " + strings.Replace(s.URL, "http://", "http://user:xxxxx@", 1) + "/x?token=xxxxx&id=xxxxx: status 404"
	if err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	var fe *Error
	if errors.As(err, &fe) && fe.URL != url {
		t.Errorf("Error.URL = %q, want the URL as requested %q", fe.URL, url)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://h/a/b", "http://h/a/b"},
		{"http://user@h/a", "http://user@h/a"},
		{"https://user:pw@h:8080/a?x=1&y=&z#frag", "https://user:xxxxx@h:8080/a?x=xxxxx&y=xxxxx&xxxxx#frag"},
		{"http://h/a?token=s%20e", "http://h/a?token=xxxxx"},
		{"http://user:pw@h/%zz?k=secret", "http://user:xxxxx@h/%zz?k=xxxxx"},
		{"http://user:p@w@h/x", "http://user:xxxxx@h/x"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRetriesLogged(t *testing.T) {
	s := serve(t, reply{503, ``}, reply{200, `{}`})
	var buf bytes.Buffer
	c := New(Options{Settings: settings, Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if _, err := c.Fetch(t.Context(), s.URL+"/x?token=secret", nil); err != nil {
		t.Fatal(err)
	}
	log := buf.String()
	if !strings.Contains(log, "level=DEBUG") || !strings.Contains(log, "status=503") || !strings.Contains(log, "token=xxxxx") || strings.Contains(log, "secret") {
		t.Errorf("log %q, want one debug line for the retry, URL redacted", log)
	}
}

func TestJitteredBackoff(t *testing.T) {
	const ms = time.Millisecond
	for attempt, ceiling := range []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms} {
		for range 100 {
			if d := jitteredBackoff(100*ms, 2000*ms, attempt); d < ceiling/2 || d > ceiling {
				t.Fatalf("attempt %d: wait %v, want between %v and %v", attempt, d, ceiling/2, ceiling)
			}
		}
	}
	if d := jitteredBackoff(100*ms, 2000*ms, 200); d < 1000*ms || d > 2000*ms {
		t.Errorf("attempt 200: wait %v, want between 1 s and 2 s", d)
	}
}

func TestFetchDeadline(t *testing.T) {
	s, _, requests := blocking(t)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := newClient(t, settings).Fetch(ctx, s.URL, nil)
	if !errors.Is(err, context.DeadlineExceeded) || IsPermanent(err) {
		t.Errorf("error %v, want a transient context.DeadlineExceeded", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestFetchTruncatedBodyRetried(t *testing.T) {
	var requests atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			// Promise more than is sent: the server closes the connection
			// and the client reads an unexpected EOF.
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, `{"a": "b"`)
			return
		}
		io.WriteString(w, `{"a": "b"}`)
	}))
	defer s.Close()
	results, err := newClient(t, settings).Fetch(t.Context(), s.URL, nil)
	if err != nil || len(results) != 1 || results[0]["a"] != "b" {
		t.Fatalf("Fetch = %v, %v; want one result after a retry", results, err)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}
