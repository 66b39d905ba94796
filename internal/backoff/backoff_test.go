package backoff

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	prevMax := time.Duration(0)
	for a := 1; a <= 20; a++ {
		d := Delay(a)
		nominal := min(50*time.Millisecond<<(a-1), 2*time.Second)
		if d > nominal || d < nominal*3/4 {
			t.Fatalf("Delay(%d) = %v, want within [%v, %v]", a, d, nominal*3/4, nominal)
		}
		prevMax = max(prevMax, d)
	}
	if prevMax > 2*time.Second {
		t.Fatalf("delay above the 2s cap: %v", prevMax)
	}
}

func TestOutageLogsOnce(t *testing.T) {
	var buf bytes.Buffer
	o := NewOutage(slog.New(slog.NewTextHandler(&buf, nil)), "redis")
	o.OK() // no outage: nothing logged
	for range 100 {
		o.Fail(errors.New("connection refused"))
	}
	if !o.Down() {
		t.Fatal("not down after failures")
	}
	o.OK()
	o.OK()
	logs := buf.String()
	if n := strings.Count(logs, "redis unavailable"); n != 1 {
		t.Errorf("outage logged %d times, want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs, "redis available again"); n != 1 || !strings.Contains(logs, "failures=100") {
		t.Errorf("recovery logged %d times, want 1 with failures=100:\n%s", n, logs)
	}
}

// TestOutageRefusal: a refusal of the ACL is logged as one, at error
// level, not as an outage, and not once per failed loop turn.
func TestOutageRefusal(t *testing.T) {
	var buf bytes.Buffer
	o := NewOutage(slog.New(slog.NewTextHandler(&buf, nil)), "redis")
	for _, msg := range []string{
		"cluster: heartbeat: ERR The user executing the script can't run this command or subcommand script: 1da6105ef55c85522abfa34179a29d01f5c7cecf, on @user_script:22.",
		"NOPERM this user has no permissions to access one of the keys used as arguments",
	} {
		for range 50 {
			o.Fail(errors.New(msg))
		}
	}
	logs := buf.String()
	if o.Down() || strings.Contains(logs, "unavailable") {
		t.Errorf("a refusal taken for an outage (down %v):\n%s", o.Down(), logs)
	}
	if n := strings.Count(logs, "refused a command, key or channel to the ACL user"); n != 1 || !strings.Contains(logs, "level=ERROR") {
		t.Errorf("refusal logged %d times, want once at error level:\n%s", n, logs)
	}
}
