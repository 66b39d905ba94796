package systest

import (
	"os"
	"testing"

	"github.com/resc-go/resc/internal/proctest"
)

// binTmp holds the test programs other than resc (the test worker).
var binTmp string

// tempBinDir is the directory of the test programs, removed by TestMain.
func tempBinDir() string { return binTmp }

// TestMain removes the binaries that the tests built (proctest.Binary and
// the test worker).
func TestMain(m *testing.M) {
	var err error
	if binTmp, err = os.MkdirTemp("", "resc-test-programs-"); err != nil {
		panic(err)
	}
	code := proctest.Main(m)
	os.RemoveAll(binTmp)
	os.Exit(code)
}
