package telemetry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"": slog.LevelWarn, "warn": slog.LevelWarn, "WARNING": slog.LevelWarn,
		"error": slog.LevelError, "Info": slog.LevelInfo, "debug": slog.LevelDebug, "trace": slog.LevelDebug,
	} {
		got, err := ParseLevel(in)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseLevel("loud"); err == nil || !strings.Contains(err.Error(), "error, warn, info or debug") {
		t.Errorf("ParseLevel(loud) error = %v", err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServer(t *testing.T) {
	var down atomic.Bool
	ready := func(ctx context.Context) error {
		if down.Load() {
			return errors.New("redis: connection refused")
		}
		return nil
	}
	s, err := Listen("127.0.0.1:0", ready, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + s.Addr()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d, want 200", code)
	}
	down.Store(true)
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "connection refused") {
		t.Errorf("/readyz when not ready = %d %q, want 503 with the reason", code, body)
	}
	if code, _ := get(t, base+"/debug/pprof/"); code != 200 {
		t.Errorf("/debug/pprof/ = %d", code)
	}
	if code, _ := get(t, base+"/debug/pprof/cmdline"); code != 404 {
		t.Errorf("/debug/pprof/cmdline = %d, want 404 (a command line may hold a secret)", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestServerWithoutPprof: NoPprof leaves every profile out.
func TestServerWithoutPprof(t *testing.T) {
	s, err := ListenWith("127.0.0.1:0", func(context.Context) error { return nil }, slog.New(slog.DiscardHandler), ServerOptions{NoPprof: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	base := "http://" + s.Addr()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/profile?seconds=1", "/debug/pprof/heap", "/debug/pprof/trace?seconds=1"} {
		if code, _ := get(t, base+path); code != 404 {
			t.Errorf("%s = %d with NoPprof, want 404", path, code)
		}
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
}

func TestListenBusyAddress(t *testing.T) {
	s, err := Listen("127.0.0.1:0", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.ln.Close()
	if _, err := Listen(s.Addr(), nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), s.Addr()) {
		t.Fatalf("second Listen on %s: %v, want an error naming the address", s.Addr(), err)
	}
}
