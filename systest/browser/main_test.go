package browser

import (
	"os"
	"testing"

	"github.com/resc-go/resc/internal/proctest"
)

// TestMain removes the resc binary that the tests built (proctest.Binary).
func TestMain(m *testing.M) { os.Exit(proctest.Main(m)) }
