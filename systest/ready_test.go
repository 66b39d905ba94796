package systest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// TestReadyFollowsLease: a replica whose heartbeats cannot be written
// (CLIENT PAUSE WRITE: Redis still answers PING) loses its lease and takes
// nothing: /readyz says so (503) instead of 200, and is 200 again once the
// replica has registered again. Before, /readyz only pinged Redis.
func TestReadyFollowsLease(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	admin := srv.Client()
	cfg := permissionConfig(t, "redis://"+srv.Addr()+"/0", "", true)
	addr := testutil.FreePort(t)
	// The default user: the configuration's username is not used.
	p := proctest.Start(t, []string{"RESC_REDIS_USERNAME=default"}, "run", "--replica-id", "l1", "--http-addr", addr, cfg)
	p.Eventually(20*time.Second, "/readyz 200", func() (bool, string) {
		code, b := readyz(addr)
		return code == 200, fmt.Sprintf("%d %s", code, b)
	})
	if err := admin.Do(t.Context(), "CLIENT", "PAUSE", "10000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	p.Eventually(10*time.Second, "/readyz 503 while the lease is lost", func() (bool, string) {
		code, b := readyz(addr)
		return code == 503 && strings.Contains(b, "not taking events"), fmt.Sprintf("%d %s", code, b)
	})
	p.Eventually(30*time.Second, "/readyz 200 once registered again", func() (bool, string) {
		code, b := readyz(addr)
		return code == 200, fmt.Sprintf("%d %s", code, b)
	})
	p.Stop(20 * time.Second)
}
