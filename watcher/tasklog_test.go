package watcher

import (
	"strings"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/testutil"
)

// countLines counts the log lines of h holding every part.
func (h *harness) countLines(parts ...string) int {
	n := 0
	for line := range strings.Lines(h.logs.String()) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// TestDedupNotLoggedAsPushed: "-> task" is logged for a task pushed, and
// only then; a task its set skipped is logged as deduplicated. Once with a
// single task per event (the commit's count says it), once with two
// (commit.lua's per-task detail, asked for when metrics are on).
func TestDedupNotLoggedAsPushed(t *testing.T) {
	t.Run("one task", func(t *testing.T) {
		h := newHarness(t, []config.Rule{acqRule}, nil, nil)
		h.start()
		h.push("acq/p/1", "acq/p/1") // the second deduplicated, in the same commit or the next
		h.waitLoggedDone(t, 2)
		if n := h.countLines(`msg="-> task"`, "task=trt/p/1"); n != 1 {
			t.Errorf("%d \"-> task\" lines for one task pushed:\n%s", n, h.logs.String())
		}
		if n := h.countLines(`msg="task deduplicated: already in its set, not pushed"`, "task=trt/p/1"); n != 1 {
			t.Errorf("%d \"task deduplicated\" lines, want 1:\n%s", n, h.logs.String())
		}
	})
	t.Run("two tasks", func(t *testing.T) {
		two := rule("two", `^e/(?P<id>\d+)$`, mk("t/${id}", "q", "s"), mk("shared", "q", "s"))
		h := newHarness(t, []config.Rule{two}, nil, func(_ *config.Watcher, o *Options) { o.MeterProvider = noop.NewMeterProvider() })
		h.start()
		h.push("e/1")
		h.waitHandled(1)
		h.push("e/2") // t/2 pushed, shared skipped by its set
		h.waitLoggedDone(t, 2)
		for task, want := range map[string]int{"task=t/1": 1, "task=t/2": 1, "task=shared": 1} {
			if n := h.countLines(`msg="-> task"`, task); n != want {
				t.Errorf("%d \"-> task\" lines with %s, want %d:\n%s", n, task, want, h.logs.String())
			}
		}
		if n := h.countLines(`msg="task deduplicated`, "task=shared"); n != 1 {
			t.Errorf("%d \"task deduplicated\" lines for shared, want 1:\n%s", n, h.logs.String())
		}
	})
}

// waitLoggedDone waits for n "event done" lines: an event's lines are
// logged after it counts as handled (waitHandled), the last of them
// "event done".
func (h *harness) waitLoggedDone(t *testing.T, n int) {
	t.Helper()
	testutil.Eventually(t, "events logged done", func() bool { return h.countLines(`msg="event done"`) >= n })
}

func TestTaskLogMsg(t *testing.T) {
	for _, tt := range []struct {
		detail     string
		i          int
		n, deduped int64
		want       string
	}{
		{"1", 0, 1, 0, "-> task"},
		{"0", 0, 0, 1, "task deduplicated: already in its set, not pushed"},
		{"10", 1, 1, 1, "task deduplicated: already in its set, not pushed"},
		{"10", 0, 1, 1, "-> task"},
		{"", 1, 2, 0, "-> task"},
		{"", 1, 0, 2, "task deduplicated: already in its set, not pushed"},
		{"", 0, 1, 1, "task pushed or deduplicated (see event done)"},
	} {
		if got := taskLogMsg(tt.detail, tt.i, tt.n, tt.deduped); got != tt.want {
			t.Errorf("taskLogMsg(%q, %d, %d, %d) = %q, want %q", tt.detail, tt.i, tt.n, tt.deduped, got, tt.want)
		}
	}
}
