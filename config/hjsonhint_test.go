package config

import (
	"strings"
	"testing"
)

// TestHjsonOneLineObject: an unquoted value that takes in the } or ] of its
// one-line object or array (an unquoted Hjson value runs to the end of its
// line) is reported where it is, with the rule, instead of where the
// parser stumbled lines later; other syntax errors are left as the parser
// placed them.
func TestHjsonOneLineObject(t *testing.T) {
	rules := func(lines ...string) string {
		return "{\n  watchers: [\n    {\n      input_queue: in\n      rules: [\n        {\n" +
			"          " + strings.Join(lines, "\n          ") + "\n        }\n      ]\n    }\n  ]\n}\n"
	}
	const rule = "unquoted Hjson value does, taking in the "
	for _, tt := range []struct{ name, data, want string }{
		{"make", rules(`on: ^acq/(?P<id>\d+)$`, "make: { queue: q }"),
			"c.hjson: syntax error at line 8, column 26: the unquoted value `q }` runs to the end of the line, as every " + rule +
				"`}` that should close its one-line object or array: quote the values of a one-line object ({ queue: \"q\" }) " +
				"or write one key a line (the parser stopped at line 10, column 7: Found ']' where a key name was expected"},
		{"after a quoted value", rules(`on: "^a"`, `make: { task: "t/${input_task}", queue: q }`),
			"c.hjson: syntax error at line 8, column 51: the unquoted value `q }` runs"},
		{"several values", rules(`on: "^a"`, "make: { queue: q, set: s }"),
			"c.hjson: syntax error at line 8, column 26: the unquoted value `q, set: s }` runs"},
		{"nested", rules(`on: "^a"`, `fetch: [ { url: "http://svc/x", returns: c } ]`, `make: { queue: "q" }`),
			"c.hjson: syntax error at line 8, column 52: the unquoted value `c } ]` runs to the end of the line, as every " + rule + "`} ]`"},
		{"array", "{\n  k: [ \"a\", b ]\n}\n",
			"c.hjson: syntax error at line 2, column 13: the unquoted value `b ]` runs"},
		{"numbers and a regex are no cause", rules(`on: ^a[bc]$ # [x]`, "make: { queue: \"q\" }", "x: { a: 1, b: true, c: null }", "}}"),
			"c.hjson: syntax error at line 10, column 12: Found a punctuator character '}' when expecting a quoteless string"},
	} {
		_, err := LoadBytes("c.hjson", []byte(tt.data))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: got %v\nwant %s...", tt.name, err, tt.want)
		}
	}
}
