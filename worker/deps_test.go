package worker_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: a program that imports only the worker SDK
// (testdata/tiny) links none of the service's dependencies: not the
// leader election (redsync), the configuration loader (Hjson), the test
// and tool harnesses (compose-go, hcl, chromedp, miniredis), nor the
// service's packages that bring them.
func TestDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command on PATH, the dependency list cannot be read: %v", err)
	}
	forbidden := []string{
		"github.com/go-redsync/", "github.com/hjson/", "github.com/compose-spec/", "github.com/hashicorp/hcl",
		"github.com/chromedp/", "github.com/alicebob/miniredis",
		"github.com/resc-go/resc/membership", "github.com/resc-go/resc/config", "github.com/resc-go/resc/recovery",
		"github.com/resc-go/resc/deadletter", "github.com/resc-go/resc/watcher", "github.com/resc-go/resc/telemetry",
	}
	for _, pkg := range []string{".", "./testdata/tiny"} {
		out, err := exec.Command(gobin, "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 || !strings.Contains(string(out), "github.com/redis/go-redis/v9\n") {
			t.Fatalf("go list -deps %s: %d packages, no go-redis: not a dependency list\n%s", pkg, len(deps), out)
		}
		for _, d := range deps {
			for _, f := range forbidden {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}
