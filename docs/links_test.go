// Package docs holds one test: that the relative links of every Markdown
// file of the repository lead somewhere. A link to a file must name one
// that exists; a link with an anchor (`page.md#section`, `#section`) must
// name a heading of that page, as GitHub derives its anchor, or an
// explicit `<a id="...">`. Links inside code blocks and code spans are
// text, not links, and are not checked; absolute URLs are not fetched.
package docs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// TestLinks checks every .md file of the module (the repository root is
// the parent of this directory).
func TestLinks(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	problems, files, err := checkTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("found %d Markdown files under %s: the test is not looking at the repository", files, root)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestLinksFindsBrokenOnes keeps the checker honest: a tree with one good
// and several broken links of each kind.
func TestLinksFindsBrokenOnes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", "# Top\n\n## `resc dead list|requeue` [flags]\n\n"+
		"[ok](docs/a.md#a-section) [ok](#resc-dead-listrequeue-flags) [ok](docs/) [ok](https://example.com/x.md#nope)\n"+
		"[bad file](docs/missing.md) [bad anchor](docs/a.md#nope) [bad self](#top-1)\n"+
		"`[code span](nowhere.md)`\n\n```\n[fenced](nowhere.md)\n```\n"+
		"[ref]: docs/gone.md\n")
	write("docs/a.md", "# A\n\n## A section\n\n<a id=\"explicit\"></a>\n\n[ok](../README.md#top) [ok](#explicit) [dup](#a-section-1)\n\n## A section\n")
	problems, files, err := checkTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if files != 2 {
		t.Errorf("checked %d files, want 2", files)
	}
	want := []string{
		"README.md:6: docs/missing.md: no such file",
		"README.md:6: docs/a.md#nope: no heading or anchor \"nope\" in docs/a.md",
		"README.md:6: #top-1: no heading or anchor \"top-1\" in README.md",
		"README.md:12: docs/gone.md: no such file",
	}
	if !slices.Equal(problems, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
}

func TestSlug(t *testing.T) {
	for _, tt := range []struct{ heading, want string }{
		{"Quick start", "quick-start"},
		{"Fetcher (`fetch[]`)", "fetcher-fetch"},
		{"`resc dead list|requeue|drop [flags] CONFIG`", "resc-dead-listrequeuedrop-flags-config"},
		{"Redis deployments: TLS, ACL, Sentinel, Cluster", "redis-deployments-tls-acl-sentinel-cluster"},
		{"`http_addr` and [the console](ui.md)", "http_addr-and-the-console"},
		{"Shutdown (SIGTERM)", "shutdown-sigterm"},
		{"Été à Paris", "été-à-paris"},
	} {
		if got := slug(tt.heading); got != tt.want {
			t.Errorf("slug(%q) = %q, want %q", tt.heading, got, tt.want)
		}
	}
}

var (
	// inlineLink matches [text](target) and ![alt](target); the target
	// ends at the first space (a title may follow) or closing parenthesis.
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(<?([^)\s>]+)>?(?:\s+"[^"]*")?\)`)
	// refDef matches a reference definition: [label]: target
	refDef     = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s.*)?$`)
	heading    = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	mdLink     = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	fence      = regexp.MustCompile("^\\s{0,3}(```|~~~)")
)

// page is what the checker knows of a Markdown file: its anchors, and its
// links with their line numbers.
type page struct {
	anchors map[string]bool
	links   []link
}

type link struct {
	line   int
	target string
}

// checkTree checks the Markdown files under root and returns one message
// per broken link, in file order, and how many files it read.
func checkTree(root string) ([]string, int, error) {
	pages := map[string]*page{}
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "vendor", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.EqualFold(filepath.Ext(p), ".md") {
			return nil
		}
		text, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		pages[p] = parse(string(text))
		names = append(names, p)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	var problems []string
	for _, p := range names {
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		for _, l := range pages[p].links {
			if msg := check(p, l.target, pages, root); msg != "" {
				problems = append(problems, fmt.Sprintf("%s:%d: %s: %s", rel, l.line, l.target, msg))
			}
		}
	}
	return problems, len(names), nil
}

// check returns why target, linked from the file at from, leads nowhere,
// or "" when it leads somewhere.
func check(from, target string, pages map[string]*page, root string) string {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return ""
	}
	path, anchor, _ := strings.Cut(target, "#")
	dest := from
	if path != "" {
		if strings.HasPrefix(path, "/") {
			return "an absolute path: link relatively"
		}
		dest = filepath.Join(filepath.Dir(from), filepath.FromSlash(path))
		if _, err := os.Stat(dest); err != nil {
			return "no such file"
		}
	}
	if anchor == "" {
		return ""
	}
	pg, ok := pages[dest]
	if !ok {
		return "" // an anchor into a file that is not Markdown: not checked
	}
	if !pg.anchors[anchor] {
		rel, _ := filepath.Rel(root, dest)
		return fmt.Sprintf("no heading or anchor %q in %s", anchor, filepath.ToSlash(rel))
	}
	return ""
}

// parse reads the anchors and links of a Markdown text, skipping fenced
// code blocks and code spans.
func parse(text string) *page {
	pg := &page{anchors: map[string]bool{}}
	seen := map[string]int{}
	inFence := ""
	for i, line := range strings.Split(text, "\n") {
		if m := fence.FindStringSubmatch(line); m != nil {
			switch {
			case inFence == "":
				inFence = m[1]
				continue
			case inFence == m[1]:
				inFence = ""
				continue
			}
		}
		if inFence != "" {
			continue
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			pg.anchors[m[1]] = true
		}
		if m := heading.FindStringSubmatch(line); m != nil {
			s := slug(m[1])
			if n := seen[s]; n > 0 {
				pg.anchors[fmt.Sprintf("%s-%d", s, n)] = true
			} else {
				pg.anchors[s] = true
			}
			seen[s]++
		}
		if m := refDef.FindStringSubmatch(line); m != nil {
			pg.links = append(pg.links, link{line: i + 1, target: m[1]})
			continue
		}
		for _, m := range inlineLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
			pg.links = append(pg.links, link{line: i + 1, target: m[1]})
		}
	}
	return pg
}

// slug is GitHub's anchor of a heading: its text as rendered (code spans
// and links reduced to their text), lower case, with every character but
// letters, digits, spaces, hyphens and underscores removed, and spaces made
// hyphens.
func slug(h string) string {
	h = mdLink.ReplaceAllString(h, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestNoMergeMarkers: no Markdown file of the repository keeps the marker
// lines of an unresolved merge (a link checker reads past them).
func TestNoMergeMarkers(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	marker := regexp.MustCompile(`(?m)^(<{7}|>{7}|={7})( |$)`)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".md") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if loc := marker.FindIndex(b); loc != nil {
			t.Errorf("%s: line %d is a merge marker", path, 1+strings.Count(string(b[:loc[0]]), "\n"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
