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
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/resc-go/resc/internal/testutil"
)

// rescModule is the path of the product module, rescPackage the import
// path of the resc command in it.
const (
	rescModule  = "github.com/resc-go/resc"
	rescPackage = rescModule + "/cmd/resc"
)

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

// Build builds the resc command into dir/resc with `go build` and returns
// the binary's path. The current directory must be inside the resc-go
// module or inside a module beside it that replaces it with the working
// tree (loadtest, deploy/check, systest/browser): the build runs in the
// product module's directory, so resc is built with the product's go.mod
// and go.sum, never with the versions a test module selects. The build is never -race, whatever the caller's is:
// it stays fast, and the race detector has the in-process tests for it.
func Build(ctx context.Context, dir string, opts BuildOptions) (string, error) {
	bin, err := filepath.Abs(filepath.Join(dir, "resc")) // the build runs elsewhere
	if err != nil {
		return "", fmt.Errorf("proctest: %w", err)
	}
	args := []string{"build", "-o", bin}
	if opts.Trimpath {
		args = append(args, "-trimpath")
	}
	if opts.Version != "" {
		args = append(args, "-ldflags", "-X main.version="+opts.Version)
	}
	moduleDir, err := rescModuleDir(ctx)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", append(args, rescPackage)...)
	cmd.Dir = moduleDir
	if opts.Static {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("proctest: go build %s: %w\n%s", rescPackage, err, out)
	}
	return bin, nil
}

// rescModuleDir returns the directory of the resc-go module as the go
// command resolves it from the current directory: the main module itself,
// or the directory a replace directive names.
func rescModuleDir(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", rescModule)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("proctest: go list -m %s (run from inside the resc-go module or a module beside it): %w\n%s", rescModule, err, stderr.Bytes())
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("proctest: go list -m %s: no directory (is the module in the module cache only?)", rescModule)
	}
	return dir, nil
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
