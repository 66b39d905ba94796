package replica

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestStartWait: a start that waits logs its first failure, then once
// every startWaitRepeat however often it fails, then its end.
func TestStartWait(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	w := newStartWait(slog.New(slog.NewTextHandler(&buf, nil)), "registering")
	w.now = func() time.Time { return now }
	w.ok() // no wait: nothing logged
	down := errors.New("CLUSTERDOWN The cluster is down")
	for range 50 {
		w.fail(down)
		now = now.Add(100 * time.Millisecond) // 5 s in all
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 || !strings.Contains(buf.String(), "waiting for Redis before starting: registering failed") ||
		!strings.Contains(buf.String(), "CLUSTERDOWN") {
		t.Fatalf("after 5 s of failures, %d lines, want the first failure only:\n%s", n, buf.String())
	}
	for range 100 {
		w.fail(down)
		now = now.Add(100 * time.Millisecond) // 10 s more
	}
	if n := strings.Count(buf.String(), "still waiting for Redis before starting"); n != 1 || !strings.Contains(buf.String(), "waiting_for=10s") {
		t.Fatalf("after 15 s, %d reminders, want 1 saying how long:\n%s", n, buf.String())
	}
	w.ok()
	if !strings.Contains(buf.String(), "Redis answered: registering succeeded after waiting") || !strings.Contains(buf.String(), "failures=150") {
		t.Errorf("no line for the end of the wait:\n%s", buf.String())
	}
}
