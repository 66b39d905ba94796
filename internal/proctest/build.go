// Package proctest runs the resc binary as a real process, for the tests
// that need signals, exit codes and the environment as a user's shell
// gives them (package systest), and builds it for those and for loadtest.
//
// Build is for any program; Binary, Main and Start are for tests. The
// package does not import package testing (its helpers take a
// testutil.TB, which *testing.T satisfies), so that resc-load, which
// builds resc with Build, is not linked with it.
package proctest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/resc-go/resc/internal/testutil"
)

// rescPackage is the import path of the resc command.
const rescPackage = "github.com/resc-go/resc/cmd/resc"

// BuildOptions are the flags of Build's `go build`. The zero value builds
// as a plain `go build` does: the version is "dev".
type BuildOptions struct {
	// Version, when not "", is stamped into the binary as its version
	// (-ldflags -X main.version=Version), as the release build does.
	Version string
	// Trimpath removes the file system paths from the binary (-trimpath).
	Trimpath bool
	// Static builds without cgo (CGO_ENABLED=0), as the release build and
	// the container image do.
	Static bool
}

// Build builds the resc command into dir/resc with `go build`, from the
// current directory, which must be inside the resc-go module, and returns
// the binary's path. The build is never -race, whatever the caller's is:
// it stays fast, and the race detector has the in-process tests for it.
func Build(ctx context.Context, dir string, opts BuildOptions) (string, error) {
	bin := filepath.Join(dir, "resc")
	args := []string{"build", "-o", bin}
	if opts.Trimpath {
		args = append(args, "-trimpath")
	}
	if opts.Version != "" {
		args = append(args, "-ldflags", "-X main.version="+opts.Version)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, rescPackage)...)
	if opts.Static {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("proctest: go build %s: %w\n%s", rescPackage, err, out)
	}
	return bin, nil
}

// BuildPackage builds the main package pkg (an import path of the module)
// into dir with `go build` and returns the binary's path: the test
// programs beside resc (a worker of package worker, for instance).
func BuildPackage(ctx context.Context, dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("proctest: go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// The binary of Binary, built once per test process.
var (
	buildOnce sync.Once
	binDir    string // removed by Main
	binPath   string
	binErr    error
)

// Binary returns the resc binary of the tests, built with Build (default
// options) by the first call of the test process, in a temporary directory
// that Main removes. It fails the test when the build failed.
func Binary(t testutil.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "resc-test-bin-")
		if binErr == nil {
			// The first test's context: the build is over before it returns.
			binPath, binErr = Build(t.Context(), binDir, BuildOptions{})
		}
	})
	if binErr != nil {
		t.Fatalf("building resc for the process tests: %v", binErr)
	}
	return binPath
}

// Main runs the tests of m (a *testing.M) and then removes the binary that
// Binary built, if it did; it returns the exit code for os.Exit. A package
// whose tests use Binary or Start calls it from its TestMain.
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	return code
}
