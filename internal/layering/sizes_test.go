package layering

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The size rules of the product's code (docs/architecture.md): a file
// holds one concern, a function one step.
const (
	maxFileLines = 500
	maxFuncLines = 80
)

// notProduct are the folders of test harnesses and test helpers, beside
// the product: the size rules are the product's.
var notProduct = []string{"systest", "internal/redistest", "internal/testutil", "internal/otlptest", "internal/proctest", "deploy/check", "testdata", "node_modules", ".git"}

// TestSizes: no product file over maxFileLines lines, no function over
// maxFuncLines, test files aside.
func TestSizes(t *testing.T) {
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, root+"/"))
		if d.IsDir() {
			for _, skip := range notProduct {
				if rel == skip || strings.HasSuffix(rel, "/"+skip) {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		files++
		for _, p := range sizeProblems(t, path, rel) {
			t.Error(p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("found %d Go files under %s: the test is not looking at the repository", files, root)
	}
}

// sizeProblems are the breaches of the size rules in the file at path.
func sizeProblems(t *testing.T, path, name string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var ps []string
	if n := fset.File(f.Pos()).LineCount(); n > maxFileLines {
		ps = append(ps, name+": "+itoa(n)+" lines, over "+itoa(maxFileLines))
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok {
			n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
			if n > maxFuncLines {
				ps = append(ps, name+": func "+fd.Name.Name+" is "+itoa(n)+" lines, over "+itoa(maxFuncLines))
			}
		}
	}
	return ps
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSizesFindsBreaches keeps the size check honest.
func TestSizesFindsBreaches(t *testing.T) {
	var b strings.Builder
	b.WriteString("package x\n\nfunc long() {\n")
	for range maxFuncLines {
		b.WriteString("\t_ = 1\n")
	}
	b.WriteString("}\n\nfunc short() {}\n")
	for range maxFileLines {
		b.WriteString("\n")
	}
	path := filepath.Join(t.TempDir(), "x.go")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ps := sizeProblems(t, path, "x.go")
	if len(ps) != 2 || !strings.Contains(ps[0], "lines, over 500") || !strings.Contains(ps[1], "func long is 82 lines") {
		t.Errorf("problems %q, want the file and func long", ps)
	}
}
