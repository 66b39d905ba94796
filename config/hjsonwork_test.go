package config

import (
	"fmt"
	"strings"
	"testing"
)

// ruleFile is an Hjson configuration whose one rule matches on, written
// unquoted on its own line.
func ruleFile(on string) []byte {
	return []byte("{\n  watchers: [\n    {\n      input_queue: in\n      rules: [\n        {\n          on: " + on +
		"\n          make: { queue: \"q\" }\n        }\n      ]\n    }\n  ]\n}\n")
}

// TestHjsonTooSlowRefused: an unquoted value starting like true and full of
// brackets, on which hjson-go spends a time growing with the square of
// its length (100 KB: about 10 s), is refused before the parser sees it,
// with a message naming the line and saying what to do; before the limit
// the file loaded (t]]]... is a valid regular expression).
func TestHjsonTooSlowRefused(t *testing.T) {
	for _, on := range []string{"t" + strings.Repeat("]", 100_000), "f" + strings.Repeat("/", 100_000), "nul" + strings.Repeat("a,", 50_000)} {
		_, err := LoadBytes("c.hjson", ruleFile(on))
		want := fmt.Sprintf("c.hjson: line 7 is too much for the Hjson parser: %d bytes holding ", len("          on: ")+len(on))
		if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "write the configuration as JSON (.json)") {
			t.Errorf("%.4s...: err = %v, want %q...", on, err, want)
		}
	}
}

// TestHjsonLongLinesAccepted: long lines are not refused for their
// length: a 200 KB regular expression without those characters loads, and
// a line of 8 KB all of them passes the check.
func TestHjsonLongLinesAccepted(t *testing.T) {
	if _, err := LoadBytes("c.hjson", ruleFile("^("+strings.Repeat("a", 200_000)+")$")); err != nil {
		t.Errorf("a 200 KB regular expression: %v", err)
	}
	if serr := hjsonTooSlow([]byte("{\n  k: t" + strings.Repeat("]", 8_000) + "\n}\n")); serr != nil {
		t.Errorf("a line of 8 KB full of brackets: %v", serr)
	}
}

// BenchmarkHjsonLoad parses files of n lines of 1,400 brackets each,
// within the limit up to 64 lines: the time grows with the file, linearly
// (compare ns/op across n); and the heaviest single line the limit lets
// through, the longest parse of an accepted file.
func BenchmarkHjsonLoad(b *testing.B) {
	bench := func(name string, lines int, line string) {
		var s strings.Builder
		s.WriteString("{\n")
		for i := range lines {
			fmt.Fprintf(&s, "  k%d: %s\n", i, line)
		}
		s.WriteString("}\n")
		data := []byte(s.String())
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, serr := parseHjson(data); serr != nil {
					b.Fatal(serr)
				}
			}
		})
	}
	for _, n := range []int{8, 16, 32, 64} {
		bench(fmt.Sprintf("lines=%d", n), n, "t"+strings.Repeat("]", 1400))
	}
	bench("one line at the limit", 1, "t"+strings.Repeat("]", 11_575))
}
