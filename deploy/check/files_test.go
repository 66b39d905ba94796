package check

// The tests run in deploy/check, go test's working directory: the files
// they check are one directory up, the repository root two.
const (
	deployDir = ".."
	repoRoot  = "../.."
)
