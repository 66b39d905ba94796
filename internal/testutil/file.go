package testutil

import (
	"os"
	"path/filepath"
)

// WriteFile writes content to a file name in a new temporary directory of
// the test and returns its path.
func WriteFile(t TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
	return path
}
