// Package layering holds the tests of the repository's structure: that
// every package of the product module and of the modules beside it (the
// test harnesses: loadtest, deploy/check, systest/browser) imports only the
// project packages its layer allows (docs/architecture.md, "Layers"), and
// that the product's go.mod requires none of the harnesses' heavy
// dependencies. `make lint` runs them, and so does `make test`. A new
// package must be added to the table below before the test passes: where
// it sits is a decision, not an accident.
package layering

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/resc-go/resc"

// allowed maps each package (relative to the module) to the project
// packages its non-test files may import. A trailing "/*" allows every
// package below. Test files may import anything but cmd.
var allowed = map[string][]string{
	// Leaves: the configuration, telemetry and the internal helpers.
	"config":               {"internal/jsonkind", "internal/keyspace"},
	"telemetry":            nil,
	"internal/backoff":     nil,
	"internal/jsonkind":    nil,
	"internal/keyspace":    nil,
	"internal/script":      nil,
	"internal/counts":      nil,
	"internal/embedded":    nil,
	"internal/redisserver": nil,
	"internal/testutil":    nil,
	"internal/otlptest":    nil,
	"internal/takenlist":   {"internal/keyspace"},
	// The reliable consumer shared by the service and the worker SDK:
	// registration and lease, and the scripts both sides run (hand-back,
	// replay, promotion, the dead-letter entry, the byte budget).
	"internal/registry":  {"internal/backoff", "internal/keyspace", "internal/script"},
	"internal/consumer":  {"internal/keyspace", "internal/script"},
	"internal/redisconn": {"config"},
	"internal/redistest": {"internal/redisserver"},
	"internal/proctest":  {"internal/*"},
	"internal/explain":   {"config", "rules"},
	"internal/layering":  nil,

	// The domain: rules is pure; watcher, cluster and recovery never
	// import each other (they meet in replica through small interfaces).
	"rules":      {"config"},
	"fetch":      {"config", "internal/jsonkind"},
	"deadletter": {"internal/consumer", "internal/keyspace", "internal/script"},
	"watcher":    {"config", "rules", "deadletter", "internal/backoff", "internal/consumer", "internal/counts", "internal/keyspace", "internal/script"},
	"membership": {"config", "internal/backoff", "internal/counts", "internal/keyspace", "internal/registry", "internal/script"},
	"recovery":   {"config", "deadletter", "internal/backoff", "internal/consumer", "internal/keyspace", "internal/script", "internal/takenlist"},

	// Assembly and operation: a replica's parts, and the read model.
	"replica": {"config", "rules", "fetch", "watcher", "membership", "recovery", "telemetry", "internal/*"},
	"inspect": {"config", "membership", "deadletter", "internal/keyspace", "internal/script", "internal/takenlist"},
	"console": {"config", "membership", "deadletter", "inspect", "internal/counts"},
	// The worker SDK links none of the service: only the shared leaves.
	"worker": {"internal/backoff", "internal/consumer", "internal/keyspace", "internal/registry", "internal/script"},

	// The command: wiring of everything above.
	"cmd/resc": {"config", "rules", "fetch", "deadletter", "membership", "inspect", "console", "replica", "telemetry", "internal/*"},

	// Beside the product, imported by none of it: the container health
	// check, the examples and the system tests, in the product module...
	"deploy/healthcheck": nil,
	"examples/demo-api":  {"telemetry"},
	"examples/worker":    {"telemetry", "worker"},
	"systest":            nil,
	"systest/testworker": {"worker"},

	// ... and the harnesses with heavy dependencies, each a module of its
	// own (see harnessModules).
	"loadtest":               {"config", "fetch", "rules", "internal/*"},
	"loadtest/cmd/resc-load": {"loadtest"},
	"deploy/check":           nil,
	"systest/browser":        nil,
	"docs":                   nil, // the link checker of the Markdown files
}

// harnessModules are the modules beside the product, relative to the
// repository root, each with a go.mod that replaces the product module with
// the working tree. TestLayering fails on a go.mod that is not listed.
var harnessModules = []string{"loadtest", "deploy/check", "systest/browser"}

// harnessRequirements are the modules that only the harnesses may require:
// the product's users must not get them in their module graph.
var harnessRequirements = []string{
	"github.com/chromedp/chromedp",
	"github.com/chromedp/cdproto",
	"github.com/compose-spec/compose-go/v2",
	"github.com/hashicorp/hcl/v2",
	"github.com/zclconf/go-cty",
}

// root is the repository root, from this package's directory (go test's
// working directory).
const root = "../.."

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func TestLayering(t *testing.T) {
	seen := 0
	for _, p := range packages(t) {
		seen++
		name := rel(p.ImportPath)
		rules, ok := allowed[name]
		if !ok {
			t.Errorf("package %s is not in the layering table (internal/layering): add it where it belongs, and to docs/architecture.md", name)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			if !allows(rules, rel(imp)) {
				t.Errorf("%s imports %s: its layer allows only %v (docs/architecture.md, \"Layers\")", name, rel(imp), rules)
			}
		}
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			if strings.HasPrefix(imp, module+"/cmd/") {
				t.Errorf("the tests of %s import %s: nothing imports a command", name, rel(imp))
			}
		}
	}
	if seen < 10 {
		t.Fatalf("go list found %d packages: the test is not looking at the module", seen)
	}
}

// packages lists the packages of the product module and of every harness
// module, failing the test on a go.mod that is in neither.
func packages(t *testing.T) []pkg {
	t.Helper()
	mods := modules(t)
	if want := append([]string{"."}, harnessModules...); !slices.Equal(mods, slices.Sorted(slices.Values(want))) {
		t.Errorf("the go.mod files of the repository are in %v, want %v: list a new module in harnessModules (internal/layering) and in MODULES (Makefile)", mods, want)
	}
	var all []pkg
	for _, dir := range mods {
		out := goCmd(t, dir, "list", "-json", "./...")
		dec := json.NewDecoder(bytes.NewReader(out))
		for dec.More() {
			var p pkg
			if err := dec.Decode(&p); err != nil {
				t.Fatal(err)
			}
			all = append(all, p)
		}
	}
	return all
}

// modules returns the directories of the repository holding a go.mod,
// relative to the root, sorted.
func modules(t *testing.T) []string {
	t.Helper()
	var mods []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == "go.mod" {
			rel, err := filepath.Rel(root, filepath.Dir(path))
			if err != nil {
				return err
			}
			mods = append(mods, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(mods)
	return mods
}

// goCmd runs the go command in dir (relative to the repository root) and
// returns its standard output.
func goCmd(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join(root, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return out
}

// TestProductRequirements checks that the product's go.mod requires none
// of the harnesses' dependencies (directly or as // indirect): they live in
// the harness modules, where the product's and the SDK's users never get
// them.
func TestProductRequirements(t *testing.T) {
	var mod struct {
		Module  struct{ Path string }
		Require []struct{ Path string }
	}
	if err := json.Unmarshal(goCmd(t, ".", "mod", "edit", "-json"), &mod); err != nil {
		t.Fatal(err)
	}
	if mod.Module.Path != module {
		t.Fatalf("the go.mod at %s is of %s, want %s", root, mod.Module.Path, module)
	}
	if len(mod.Require) < 5 {
		t.Fatalf("go mod edit -json lists %d requirements: not the product's go.mod", len(mod.Require))
	}
	for _, r := range mod.Require {
		if slices.Contains(harnessRequirements, r.Path) {
			t.Errorf("the product's go.mod requires %s: only the harness modules (%v) may", r.Path, harnessModules)
		}
	}
}

func rel(importPath string) string { return strings.TrimPrefix(importPath, module+"/") }

func allows(rules []string, imp string) bool {
	for _, r := range rules {
		if r == imp {
			return true
		}
		if dir, ok := strings.CutSuffix(r, "/*"); ok && strings.HasPrefix(imp, dir+"/") {
			return true
		}
	}
	return false
}

// TestAllows keeps the pattern matching honest.
func TestAllows(t *testing.T) {
	for _, tt := range []struct {
		rules []string
		imp   string
		want  bool
	}{
		{[]string{"config"}, "config", true},
		{[]string{"config"}, "rules", false},
		{[]string{"internal/*"}, "internal/keyspace", true},
		{[]string{"internal/*"}, "internal/a/b", true},
		{[]string{"internal/*"}, "internals", false},
		{[]string{"internal/*"}, "watcher", false},
		{nil, "config", false},
	} {
		if got := allows(tt.rules, tt.imp); got != tt.want {
			t.Errorf("allows(%v, %s) = %v, want %v", tt.rules, tt.imp, got, tt.want)
		}
	}
}
