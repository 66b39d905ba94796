// Package layering holds one test: that every package of the module imports
// only the project packages its layer allows (docs/architecture.md,
// "Layers"). `make lint` runs it, and so does `make test`. A new package
// must be added to the table below before the test passes: where it sits
// is a decision, not an accident.
package layering

import (
	"bytes"
	"encoding/json"
	"os/exec"
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
	"watcher":    {"config", "rules", "deadletter", "internal/backoff", "internal/consumer", "internal/keyspace", "internal/script"},
	"membership": {"config", "internal/backoff", "internal/keyspace", "internal/registry", "internal/script"},
	"recovery":   {"config", "deadletter", "internal/backoff", "internal/consumer", "internal/keyspace", "internal/script", "internal/takenlist"},

	// Assembly and operation: a replica's parts, and the read model.
	"replica": {"config", "rules", "fetch", "watcher", "membership", "recovery", "telemetry", "internal/*"},
	"inspect": {"config", "membership", "deadletter", "internal/keyspace", "internal/script", "internal/takenlist"},
	"console": {"config", "membership", "deadletter", "inspect"},
	// The worker SDK links none of the service: only the shared leaves.
	"worker": {"internal/backoff", "internal/consumer", "internal/keyspace", "internal/registry", "internal/script"},

	// The command: wiring of everything above.
	"cmd/resc": {"config", "rules", "fetch", "deadletter", "membership", "inspect", "console", "replica", "telemetry", "internal/*"},

	// Beside the product, imported by none of it.
	"loadtest":               {"config", "fetch", "rules", "internal/*"},
	"loadtest/cmd/resc-load": {"loadtest"},
	"deploy":                 nil,
	"deploy/healthcheck":     nil,
	"examples/demo-api":      {"telemetry"},
	"examples/worker":        {"telemetry", "worker"},
	"systest":                nil,
	"systest/testworker":     {"worker"},
}

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func TestLayering(t *testing.T) {
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	seen := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
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
