package check

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/rules"
)

// rescConfig is a resc-go configuration of the deployment files, loaded
// and compiled as `resc run` does, with what the checks compare.
type rescConfig struct {
	file        string // absolute path, or a name for an inline one
	cfg         *config.Config
	inputQueues []string
	queues      map[string]string // queue pattern of each make entry -> its set pattern ("" for none)
	fetchURLs   []string          // url patterns of the fetchers
}

// loadRescConfig loads and compiles the configuration file, failing the
// test with every problem `resc check` would list.
func loadRescConfig(t *testing.T, file string) *rescConfig {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Errorf("the configuration: %v", err)
		return nil
	}
	abs, _ := filepath.Abs(file)
	return compileRescConfig(t, abs, data)
}

// compileRescConfig is loadRescConfig for a configuration already read;
// name chooses the format by its extension.
func compileRescConfig(t *testing.T, name string, data []byte) *rescConfig {
	t.Helper()
	cfg, err := config.LoadBytes(name, data)
	if err != nil {
		t.Errorf("%s: not a valid configuration: %v", name, err)
		return nil
	}
	rc := &rescConfig{file: name, cfg: cfg, queues: map[string]string{}}
	for _, w := range cfg.Watchers {
		if _, ps := rules.Compile(name, w); len(ps) > 0 {
			t.Errorf("%s: not a valid configuration: %v", name, ps)
			return nil
		}
		rc.inputQueues = append(rc.inputQueues, w.InputQueue)
		for _, r := range w.Rules {
			for _, f := range r.Fetch {
				rc.fetchURLs = append(rc.fetchURLs, f.URL)
			}
			for _, m := range r.Make {
				rc.queues[m.Queue] = m.Set
			}
		}
	}
	for _, w := range cfg.Warnings {
		t.Errorf("%s: %v", name, w)
	}
	slices.Sort(rc.inputQueues)
	return rc
}
