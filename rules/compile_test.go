package rules

import (
	"regexp"
	"strings"
	"testing"

	"github.com/resc-go/resc/config"
)

// watcher builds watcher number index of rules, numbering the rules and make
// entries as the configuration loader does.
func watcher(index int, rules ...config.Rule) config.Watcher {
	for i := range rules {
		rules[i].Index = i
		for j := range rules[i].Make {
			rules[i].Make[j].Index = j
		}
	}
	return config.Watcher{Index: index, InputQueue: "in", Rules: rules}
}

func mk(task, queue, set string) config.Maker {
	return config.Maker{Task: task, Queue: queue, Set: set}
}

func TestCompileProblems(t *testing.T) {
	type want struct{ path, rule, msg string }
	tests := []struct {
		name  string
		index int
		rules []config.Rule
		want  []want
	}{
		{
			name:  "invalid regex with byte offset",
			rules: []config.Rule{{Name: "r", On: `^ab[c`, Make: []config.Maker{mk("", "q", "")}}},
			want:  []want{{"watchers[0].rules[0].on", "r", "invalid regular expression at byte 3: missing closing ]: `[c`"}},
		},
		{
			name:  "invalid repetition offset",
			rules: []config.Rule{{Name: "r", On: `xa**`, Make: []config.Maker{mk("", "q", "")}}},
			want:  []want{{"watchers[0].rules[0].on", "r", "at byte 2: invalid nested repetition operator"}},
		},
		{
			name: "invalid regex and its patterns still checked",
			rules: []config.Rule{{Name: "r", On: `^(?P<id>\d+)(`, Make: []config.Maker{
				mk("${id}", "q/${idd}", ""),
			}}},
			want: []want{
				{"watchers[0].rules[0].on", "r", "missing closing )"},
				{"watchers[0].rules[0].make[0].queue", "r", "unknown variable ${idd}: defined are input_task, id"},
			},
		},
		{
			name:  "group named input_task",
			rules: []config.Rule{{Name: "r", On: `(?P<input_task>x)`, Make: []config.Maker{mk("", "q", "")}}},
			want:  []want{{"watchers[0].rules[0].on", "r", "cannot be named input_task"}},
		},
		{
			name:  "group named twice",
			rules: []config.Rule{{Name: "r", On: `(?P<a>x)|(?<a>y)`, Make: []config.Maker{mk("${a}", "q", "")}}},
			want:  []want{{"watchers[0].rules[0].on", "r", `group "a" is named twice`}},
		},
		{
			name:  "unknown variable in task lists what is defined",
			rules: []config.Rule{{Name: "r", On: `(?P<a>x)(?P<b>y)`, Make: []config.Maker{mk("${c}", "q", "")}}},
			want:  []want{{"watchers[0].rules[0].make[0].task", "r", "unknown variable ${c}: defined are input_task, a, b"}},
		},
		{
			name:  "numbered group is not a variable",
			rules: []config.Rule{{Name: "r", On: `(x)`, Make: []config.Maker{mk("${1}", "q", "")}}},
			want:  []want{{"watchers[0].rules[0].make[0].task", "r", "unknown variable ${1}: defined are input_task"}},
		},
		{
			name: "unknown variable in set of second maker, fetch namespaces listed",
			rules: []config.Rule{{Name: "r", On: `x`, Fetch: []config.Fetcher{{URL: "http://h/${input_task}", Returns: "data"}},
				Make: []config.Maker{mk("", "q", ""), mk("", "q", "s/${date}")}}},
			want: []want{{"watchers[0].rules[0].make[1].set", "r", "unknown variable ${date}: defined are input_task, data.<key>"}},
		},
		{
			name: "same unknown variable twice in one field reported once",
			rules: []config.Rule{{Name: "r", On: `x`, Make: []config.Maker{
				mk("${nope}/${nope}", "${nope}", ""),
			}}},
			want: []want{
				{"watchers[0].rules[0].make[0].task", "r", "unknown variable ${nope}"},
				{"watchers[0].rules[0].make[0].queue", "r", "unknown variable ${nope}"},
			},
		},
		{
			name: "fetch URL using a fetch variable",
			rules: []config.Rule{{Name: "r", On: `(?P<id>\d+)`, Fetch: []config.Fetcher{
				{URL: "http://h/a/${id}", Returns: "a"},
				{URL: "http://h/b/${a.ref}", Returns: "b"},
			}, Make: []config.Maker{mk("", "q", "")}}},
			want: []want{{"watchers[0].rules[0].fetch[1].url", "r", "a fetch URL cannot use the fetch variable ${a.ref}: it may use only input_task, id"}},
		},
		{
			name: "unknown variable in fetch URL",
			rules: []config.Rule{{Name: "r", On: `x`, Fetch: []config.Fetcher{{URL: "http://h/${id}", Returns: "a"}},
				Make: []config.Maker{mk("", "q", "")}}},
			want: []want{{"watchers[0].rules[0].fetch[0].url", "r", "unknown variable ${id}"}},
		},
		{
			name: "variable before the scheme is over, reported once per URL",
			rules: []config.Rule{{Name: "r", On: `(?P<id>\d+)`, Fetch: []config.Fetcher{
				{URL: "${input_task}/items/${id}", Returns: "a"},
				{URL: "http${id}://h/${id}", Returns: "b"},
				{URL: "${id}", Returns: "c", Raw: true},
			}, Make: []config.Maker{mk("", "q", "")}}},
			want: []want{
				{"watchers[0].rules[0].fetch[0].url", "r", `${input_task} comes before the "://" that ends the scheme, where no escaping can keep it from changing the scheme and the host: ` +
					`write them out (http://${host}/... is fine), or give the fetcher "escape": false to insert values as they are`},
				{"watchers[0].rules[0].fetch[1].url", "r", `${id} comes before the "://"`},
			},
		},
		{
			name: "make entry mixing two fetchers",
			rules: []config.Rule{{Name: "r", On: `x`, Fetch: []config.Fetcher{
				{URL: "http://h/a", Returns: "a"},
				{URL: "http://h/b", Returns: "b"},
			}, Make: []config.Maker{
				mk("${a.x}", "q/${a.y}", ""), // fine
				mk("${a.x}", "q/${b.y}", ""),
			}}},
			want: []want{{"watchers[0].rules[0].make[1].queue", "r", `uses the results of two fetchers: "b" here and "a" in task`}},
		},
		{
			name: "make entry mixing two fetchers in one field",
			rules: []config.Rule{{Name: "r", On: `x`, Fetch: []config.Fetcher{
				{URL: "http://h/a", Returns: "a"},
				{URL: "http://h/b", Returns: "b"},
			}, Make: []config.Maker{mk("${b.x}${a.x}", "q", "")}}},
			want: []want{{"watchers[0].rules[0].make[0].task", "r", `"a" here and "b" in task`}},
		},
		{
			name: "group used as a fetch namespace",
			rules: []config.Rule{{Name: "r", On: `(?P<id>\d+)`, Fetch: []config.Fetcher{{URL: "http://h/${id}", Returns: "data"}},
				Make: []config.Maker{mk("${id.x}", "q", "")}}},
			want: []want{{"watchers[0].rules[0].make[0].task", "r", `unknown variable ${id.x}: "id" is a group of on, not the returns of a fetcher; defined are input_task, id, data.<key>`}},
		},
		{
			name: "fetch variable in a rule without fetch",
			rules: []config.Rule{{Name: "r", On: `x`,
				Make: []config.Maker{mk("${data.x}", "q", "")}}},
			want: []want{{"watchers[0].rules[0].make[0].task", "r", "unknown variable ${data.x}: defined are input_task"}},
		},
		{
			name: "two fetchers with the same returns",
			rules: []config.Rule{{Name: "r", On: `x`, Fetch: []config.Fetcher{
				{URL: "http://h/a", Returns: "a"},
				{URL: "http://h/b", Returns: "a"},
			}, Make: []config.Maker{mk("", "q", "")}}},
			want: []want{{"watchers[0].rules[0].fetch[1].returns", "r", `fetch namespace "a" is already the returns`}},
		},
		{
			name:  "several problems in several rules, anonymous rule, watcher index",
			index: 2,
			rules: []config.Rule{
				{Name: "ok", On: `^(?P<a>\w+)$`, Make: []config.Maker{mk("${a}", "q/${a}", "s")}},
				{On: `(?P<a>x`, Make: []config.Maker{mk("", "q", "")}},
				{Name: "second", On: `(?P<a>x)`, Make: []config.Maker{
					mk("${b}", "q", ""),
					mk("", "q/${c}", "${d}"),
				}},
			},
			want: []want{
				{"watchers[2].rules[1].on", "<anonymous rule>", "invalid regular expression"},
				{"watchers[2].rules[2].make[0].task", "second", "unknown variable ${b}"},
				{"watchers[2].rules[2].make[1].queue", "second", "unknown variable ${c}"},
				{"watchers[2].rules[2].make[1].set", "second", "unknown variable ${d}"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, problems := Compile("conf.hjson", watcher(tt.index, tt.rules...))
			if rs != nil {
				t.Errorf("Ruleset = %v, want nil with problems", rs)
			}
			if len(problems) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(problems), len(tt.want), problems)
			}
			for i, w := range tt.want {
				p := problems[i]
				if p.File != "conf.hjson" || p.Path != w.path || p.Rule != w.rule || !strings.Contains(p.Message, w.msg) {
					t.Errorf("problem %d = %+v\nwant path %q, rule %q, message containing %q", i, p, w.path, w.rule, w.msg)
				}
			}
		})
	}
}

func TestCompileValid(t *testing.T) {
	tests := []struct {
		name string
		rule config.Rule
	}{
		{"literal dollar forms", config.Rule{On: `x`, Make: []config.Maker{mk("${a-b} $ ${ } ${", "$q${", "${}")}}},
		{"python and perl group syntax", config.Rule{On: `(?P<a>x)(?<b>y)`, Make: []config.Maker{mk("${a}${b}", "q", "")}}},
		{"namespace with a dot", config.Rule{On: `x`, Fetch: []config.Fetcher{{URL: "u", Returns: "a.b"}}, Make: []config.Maker{mk("${a.b.c}", "q", "")}}},
		{"fetch variables of one fetcher across fields", config.Rule{On: `x`,
			Fetch: []config.Fetcher{{URL: "u", Returns: "a"}, {URL: "v", Returns: "b"}},
			Make:  []config.Maker{mk("${a.x}", "${a.y}", "${a.z}"), mk("${b.x}", "q", "${input_task}")}}},
		{"group and namespace of the same name", config.Rule{On: `(?P<d>x)`, Fetch: []config.Fetcher{{URL: "http://h/${d}", Returns: "d"}}, Make: []config.Maker{mk("${d}${d.k}", "q", "")}}},
		{"variable anywhere in a raw URL", config.Rule{On: `(?P<d>x)`, Fetch: []config.Fetcher{{URL: "${d}", Returns: "r", Raw: true}}, Make: []config.Maker{mk("", "q", "")}}},
		{"variable in the host", config.Rule{On: `(?P<d>x)`, Fetch: []config.Fetcher{{URL: "https://${d}.example:8${d}/", Returns: "r"}}, Make: []config.Maker{mk("", "q", "")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, problems := Compile("c.json", watcher(0, tt.rule))
			if problems != nil || rs == nil {
				t.Fatalf("Compile: %v, %v; want a ruleset and no problem", rs, problems)
			}
			if got := len(rs.Rules()); got != 1 {
				t.Fatalf("%d rules, want 1", got)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []piece
	}{
		{"", nil},
		{"abc", []piece{{lit: "abc"}}},
		{"${a}", []piece{{name: "a"}}},
		{"${a}${b.c}", []piece{{name: "a"}, {name: "b.c", start: 4}}},
		{"$${a}", []piece{{lit: "$"}, {name: "a", start: 1}}},
		{"${a-b}", []piece{{lit: "${a-b}"}}},
		{"x${${a}}", []piece{{lit: "x${"}, {name: "a", start: 3}, {lit: "}", start: 7}}},
		{"${é}${", []piece{{lit: "${é}${"}}},
		{"é${a}$", []piece{{lit: "é"}, {name: "a", start: 2}, {lit: "$", start: 6}}},
	}
	for _, tt := range tests {
		got := split(tt.in)
		if len(got) != len(tt.want) {
			t.Errorf("split(%q) = %+v, want %+v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("split(%q) = %+v, want %+v", tt.in, got, tt.want)
				break
			}
		}
	}
}

// TestRegexpMessage: the byte offset of a regular expression's mistake is
// where it is, never "byte 0" for a mistake elsewhere: the ( never closed,
// the ) that closes nothing, the trailing backslash; escaped parentheses and
// those of character classes are not counted.
func TestRegexpMessage(t *testing.T) {
	for on, want := range map[string]string{
		`^acq/(?P<id>\d+`: "invalid regular expression: missing closing ): the ( at byte 5 is never closed: `^acq/(?P<id>\\d+`",
		`^(a(b)(c`:        "invalid regular expression: missing closing ): the ( at bytes 1, 6 are never closed: `^(a(b)(c`",
		`\((x[(]\Q((\E`:   "invalid regular expression: missing closing ): the ( at byte 2 is never closed: `\\((x[(]\\Q((\\E`",
		`[[:alpha:](](`:   "invalid regular expression: missing closing ): the ( at byte 12 is never closed: `[[:alpha:](](`",
		`ab)c`:            "invalid regular expression at byte 2: unexpected ): `ab)c`",
		`(a)[)]\)b)`:      "invalid regular expression at byte 9: unexpected ): `(a)[)]\\)b)`",
		`ab\`:             "invalid regular expression at byte 2: trailing backslash at end of expression: ``",
		`^ab[c`:           "invalid regular expression at byte 3: missing closing ]: `[c`",
		`x{2,1}`:          "invalid regular expression at byte 1: invalid repeat count: `{2,1}`",
	} {
		_, err := regexp.Compile(on)
		if err == nil {
			t.Fatalf("%q compiles", on)
		}
		if got := regexpMessage(on, err); got != want {
			t.Errorf("regexpMessage(%q)\n got %s\nwant %s", on, got, want)
		}
	}
}
