package systest

import (
	"net/http"
	"testing"
	"time"

	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// TestPprofOff: RESC_PPROF=off leaves the profiles out of a replica's
// HTTP address, which still serves /metrics; /debug/pprof/cmdline is never
// served (a command line may hold a Redis password).
func TestPprofOff(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	cfg := testutil.WriteFile(t, "resc.hjson", `{redis: {url: "`+rs.URL()+`"},
		watchers: [{input_queue: "events", rules: [{on: "^a$", make: {queue: "todo"}}]}]}`)
	status := func(url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tt := range []struct {
		env   string
		pprof int
	}{{"RESC_PPROF=off", 404}, {"RESC_PPROF=on", 200}} {
		addr := testutil.FreePort(t)
		p := proctest.Start(t, []string{tt.env}, "run", "--http-addr", addr, cfg)
		p.WaitLog(20*time.Second, "resc-go started")
		base := "http://" + addr
		if got := status(base + "/debug/pprof/"); got != tt.pprof {
			t.Errorf("%s: /debug/pprof/ = %d, want %d", tt.env, got, tt.pprof)
		}
		if got := status(base + "/debug/pprof/cmdline"); got != 404 {
			t.Errorf("%s: /debug/pprof/cmdline = %d, want 404", tt.env, got)
		}
		if got := status(base + "/metrics"); got != 200 {
			t.Errorf("%s: /metrics = %d, want 200", tt.env, got)
		}
		p.Stop(20 * time.Second)
	}
}
