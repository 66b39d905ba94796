package watcher

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestHostSlotsShare: a host gets at most half the watcher's slots, at most
// fetch_concurrency of them in flight; other hosts are not affected; a host
// nobody uses is forgotten.
func TestHostSlotsShare(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fc, concurrency, inFlight int
	}{
		{64, 256, 64},
		{4, 4, 3},
		{1, 4, 1},
		{8, 2, 2},
		{8, 1, 1},
	} {
		if h := newHostSlots(tc.fc, tc.concurrency, time.Second); h.inFlight != tc.inFlight {
			t.Errorf("fc %d concurrency %d: in flight %d, want %d", tc.fc, tc.concurrency, h.inFlight, tc.inFlight)
		}
	}
	h := newHostSlots(2, 4, 50*time.Millisecond)
	ctx := context.Background()
	var releases []func()
	for range 2 {
		r, err := h.acquire(ctx, "http://A:80/x")
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	var busy *errHostBusy
	start := time.Now()
	if _, err := h.acquire(ctx, "http://a/y"); !errors.As(err, &busy) || busy.host != "http://a:80" {
		t.Fatalf("third fetch to the same host (default port): %v, want busy", err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("busy after %v, want the wait of 50ms first", waited)
	}
	r, err := h.acquire(ctx, "http://b/")
	if err != nil {
		t.Fatalf("another host refused: %v", err)
	}
	r()
	got := make(chan error, 1)
	go func() {
		r, err := h.acquire(ctx, "http://a/z")
		if err == nil {
			r()
		}
		got <- err
	}()
	releases[0]() // a slot freed while it waits: it gets it
	if err := <-got; err != nil {
		t.Errorf("a waiting fetch did not get the freed slot: %v", err)
	}
	releases[1]()
	if len(h.m) != 0 {
		t.Errorf("%d hosts remembered after every release", len(h.m))
	}
}
