package rules

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
)

func mustCompile(t testing.TB, rules ...config.Rule) *Ruleset {
	t.Helper()
	rs, problems := Compile("test.json", watcher(0, rules...))
	if problems != nil {
		t.Fatalf("Compile: %v", problems)
	}
	return rs
}

// makeAll matches event and makes the tasks of every matching rule, giving
// the rules with fetchers the results.
func makeAll(rs *Ruleset, event string, results [][]map[string]string) []Task {
	var tasks []Task
	for _, m := range rs.Match(event) {
		var res [][]map[string]string
		if m.Rule().HasFetch() {
			res = results
		}
		tasks = m.Make(res, tasks)
	}
	return tasks
}

func TestPatterns(t *testing.T) {
	tests := []struct {
		name      string
		on        string
		task, set string
		event     string
		want      string // the task
		wantSet   string
	}{
		{"literal only", `x`, "fixed", "", "axb", "fixed", ""},
		{"default task", `x`, "", "", "axb", "axb", ""},
		{"input_task inside text", `x`, "<${input_task}>", "", "axb", "<axb>", ""},
		{"adjacent variables", `^(?P<a>\d+)-(?P<b>\d+)$`, "${a}${b}${a}", "", "12-345", "1234512", ""},
		{"variable then dot", `^(?P<a>\d+)`, "${a}.x", "", "12", "12.x", ""},
		{"not a variable", `^(?P<a>\d+)`, "${a-b}/${a}", "", "7", "${a-b}/7", ""},
		{"lone dollars", `^(?P<a>\d+)`, "$$${a}$", "", "7", "$$7$", ""},
		{"unterminated", `^(?P<a>\d+)`, "${a}${a", "", "7", "7${a", ""},
		{"unicode text and values", `^(?P<w>\p{L}+)/`, "→${w}←", "", "été/x", "→été←", ""},
		{"empty optional group", `^a(?P<opt>x)?b`, "[${opt}]", "", "ab", "[]", ""},
		{"group of the other branch", `(?P<a>x)|(?P<b>y)`, "${a}|${b}", "", "y", "|y", ""},
		{"unanchored search", `b(?P<d>\d)`, "${d}", "", "aab7c", "7", ""},
		{"set pattern", `^(?P<a>\w+)$`, "t/${a}", "set/${a}", "k", "t/k", "set/k"},
		{"set expanding to nothing", `^a(?P<opt>x)?b`, "t", "${opt}", "ab", "t", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := mustCompile(t, config.Rule{Name: "r", On: tt.on, Make: []config.Maker{mk(tt.task, "q", tt.set)}})
			got := makeAll(rs, tt.event, nil)
			want := []Task{{Task: tt.want, Queue: "q", Set: tt.wantSet, HasSet: tt.set != "", Rule: "r"}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("tasks = %+v, want %+v", got, want)
			}
		})
	}
}

func TestMatchSeveralRules(t *testing.T) {
	rs := mustCompile(t,
		config.Rule{Name: "first", On: `^acq/(?P<id>\d+)$`, Make: []config.Maker{mk("a/${id}", "qa", "")}},
		config.Rule{Name: "never", On: `^nothing$`, Make: []config.Maker{mk("", "qn", "")}},
		config.Rule{Name: "second", On: `acq`, Make: []config.Maker{
			mk("", "qb", "sb"),
			mk("b2", "qb2/${input_task}", ""),
		}},
		config.Rule{Name: "", On: `\d$`, Make: []config.Maker{mk("c", "qc", "")}},
	)
	got := makeAll(rs, "acq/12", nil)
	want := []Task{
		{Task: "a/12", Queue: "qa", Rule: "first"},
		{Task: "acq/12", Queue: "qb", Set: "sb", HasSet: true, Rule: "second"},
		{Task: "b2", Queue: "qb2/acq/12", Rule: "second"},
		{Task: "c", Queue: "qc", Rule: "<anonymous rule>"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tasks =\n%+v\nwant\n%+v", got, want)
	}

	if m := rs.Match("zzz"); m != nil {
		t.Errorf("Match(zzz) = %v, want nil", m)
	}
	if n := testing.AllocsPerRun(100, func() { rs.Match("zzz") }); n != 0 && !raceEnabled {
		t.Errorf("Match without match: %v allocations, want 0", n)
	}

	// Make appends after what dst holds, and leaves it alone.
	ms := rs.Match("acq/12")
	dst := []Task{{Task: "before"}}
	dst = ms[0].Make(nil, dst)
	dst = ms[1].Make(nil, dst)
	if len(dst) != 4 || dst[0].Task != "before" || dst[1].Task != "a/12" || dst[3].Queue != "qb2/acq/12" {
		t.Errorf("Make appended %+v", dst)
	}
}

func TestVars(t *testing.T) {
	rs := mustCompile(t,
		config.Rule{Name: "groups", On: `^(?P<kind>[a-z]+)(?:/(?P<opt>x))?/(\d+)/(?P<id>\d+)`, Make: []config.Maker{mk("", "q", "")}},
		config.Rule{Name: "used", On: `^(?P<kind>[a-z]+)/`, Make: []config.Maker{mk("${kind}", "q", "")}},
		config.Rule{Name: "none", On: `^`, Make: []config.Maker{mk("", "q", "")}},
	)
	ms := rs.Match("acq/1/22/tail")
	if len(ms) != 3 {
		t.Fatalf("%d matches, want 3", len(ms))
	}
	tests := []struct {
		rule string
		want []Var
	}{
		// The patterns of rule "groups" use no group: Vars locates them.
		{"groups", []Var{{"input_task", "acq/1/22/tail"}, {"kind", "acq"}, {"opt", ""}, {"id", "22"}}},
		{"used", []Var{{"input_task", "acq/1/22/tail"}, {"kind", "acq"}}},
		{"none", []Var{{"input_task", "acq/1/22/tail"}}},
	}
	for i, tt := range tests {
		if got := ms[i].Rule().Name(); got != tt.rule {
			t.Errorf("match %d is rule %q, want %q", i, got, tt.rule)
		}
		if got := ms[i].Vars(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("rule %q: Vars() = %q, want %q", tt.rule, got, tt.want)
		}
		if reqs, err := ms[i].FetchRequests(); ms[i].Rule().HasFetch() || reqs != nil || err != nil {
			t.Errorf("rule %q: has fetch", tt.rule)
		}
	}
}

func TestFetch(t *testing.T) {
	rs := mustCompile(t, config.Rule{
		Name: "f",
		On:   `^(?P<kind>\w+)/(?P<id>\d+)$`,
		Fetch: []config.Fetcher{
			{URL: "http://h/a/${id}?k=${kind}", Returns: "a"},
			{URL: "http://h/b/${input_task}", Returns: "b"},
		},
		Make: []config.Maker{
			mk("a:${a.x}", "qa/${kind}", ""),
			mk("b:${b.y}", "qb", "sb/${b.y}"),
			mk("", "all/${id}", ""),
		},
	})
	ms := rs.Match("obj/42")
	if len(ms) != 1 || !ms[0].Rule().HasFetch() {
		t.Fatalf("Match = %v, want one rule with fetch", ms)
	}
	m := &ms[0]
	want := []FetchRequest{{URL: "http://h/a/42?k=obj"}, {URL: "http://h/b/obj%2F42"}}
	if got, err := m.FetchRequests(); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("FetchRequests() = %+v, %v; want %+v", got, err, want)
	}
	tests := []struct {
		name    string
		results [][]map[string]string
		want    []Task
	}{
		{
			name: "each result of each fetcher, per namespace",
			results: [][]map[string]string{
				{{"x": "1", "y": "not b"}, {"x": "2"}},
				{{"y": "3"}},
			},
			want: []Task{
				{Task: "a:1", Queue: "qa/obj", Rule: "f"},
				{Task: "obj/42", Queue: "all/42", Rule: "f"},
				{Task: "a:2", Queue: "qa/obj", Rule: "f"},
				{Task: "obj/42", Queue: "all/42", Rule: "f"},
				{Task: "b:3", Queue: "qb", Set: "sb/3", HasSet: true, Rule: "f"},
				{Task: "obj/42", Queue: "all/42", Rule: "f"},
			},
		},
		{
			name:    "property missing from a result",
			results: [][]map[string]string{{{"z": "1"}}, nil},
			want: []Task{
				{Task: "a:", Queue: "qa/obj", Rule: "f"},
				{Task: "obj/42", Queue: "all/42", Rule: "f"},
			},
		},
		{"no result", [][]map[string]string{{}, {}}, nil},
		{"no results at all", nil, nil},
		{
			name:    "results of the first fetcher only",
			results: [][]map[string]string{{{"x": "é"}}},
			want: []Task{
				{Task: "a:é", Queue: "qa/obj", Rule: "f"},
				{Task: "obj/42", Queue: "all/42", Rule: "f"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.Make(tt.results, nil); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Make =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	rs := mustCompile(t,
		config.Rule{Name: "a", On: `^acq/(?P<p>\d+)/(?P<q>\d+)$`, Make: []config.Maker{mk("trt/${p}/${q}", "trt/${p}/todo", "s/${q}")}},
		config.Rule{Name: "b", On: `acq`, Make: []config.Maker{mk("", "all", "")}},
	)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				event := fmt.Sprintf("acq/%d/%d", g, i)
				tasks := makeAll(rs, event, nil)
				want := fmt.Sprintf("trt/%d/%d", g, i)
				if len(tasks) != 2 || tasks[0].Task != want || tasks[1].Task != event {
					errs <- fmt.Errorf("event %s: tasks %+v", event, tasks)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestFetchURLEscaping: each value is escaped for the part of the URL it
// lands in, unless the fetcher is raw.
func TestFetchURLEscaping(t *testing.T) {
	const on = `^(?P<v>.*?)(?:\|(?P<w>.*))?$` // v|w, or v alone
	tests := []struct {
		name  string
		url   string
		raw   bool
		event string
		want  string // the URL; "" when FetchRequests fails with err
		err   string
	}{
		{"path segment", "http://h/items/${v}/children", false, "a/b?c#d", "http://h/items/a%2Fb%3Fc%23d/children", ""},
		{"query value", "http://h/items?id=${v}&x=1", false, "a/b?c#d", "http://h/items?id=a%2Fb%3Fc%23d&x=1", ""},
		{"query value with & and =", "http://h/s?q=${v}", false, "k=1&admin=true", "http://h/s?q=k%3D1%26admin%3Dtrue", ""},
		{"space in path and query", "http://h/${v}?q=${v}", false, "a b+c", "http://h/a%20b+c?q=a+b%2Bc", ""},
		{"fragment", "http://h/x#${v}", false, "a/b?c#d", "http://h/x#a%2Fb%3Fc%23d", ""},
		{"slash in the query stays in the query", "http://h/x?a=1/${v}", false, "?b", "http://h/x?a=1/%3Fb", ""},
		{"non-ASCII", "http://h/${v}?q=${v}", false, "été/東", "http://h/%C3%A9t%C3%A9%2F%E6%9D%B1?q=%C3%A9t%C3%A9%2F%E6%9D%B1", ""},
		{"host", "http://${v}/x", false, "svc:8080", "http://svc:8080/x", ""},
		{"host cannot take a path nor a query", "http://${v}/x", false, "evil.example/a?b#c@d", "http://evil.example%2Fa%3Fb%23c%40d/x", ""},
		{"host, non-ASCII", "http://${v}.example/x", false, "café", "http://caf%C3%A9.example/x", ""},
		{"raw", "http://h/${v}", true, "a/b?c#d", "http://h/a/b?c#d", ""},
		{"raw dot segment", "http://h/items/${v}", true, "..", "http://h/items/..", ""},
		{"dot segment", "http://h/items/${v}/x", false, "..", "", `fetch URL of "r": ${v} is "..", a path segment that would change the path`},
		{"dot segment at the end", "http://h/items/${v}", false, ".", "", `${v} is "."`},
		{"dot segment before the query", "http://h/${v}?a", false, "..", "", `${v} is ".."`},
		{"dot segment of two variables", "http://h/a/${v}${w}/b", false, ".|.", "", `${v}${w} is ".."`},
		{"three dots are a name", "http://h/a/${v}${w}", false, "..|.", "http://h/a/...", ""},
		{"dots with literal text are a name", "http://h/a/${v}.json", false, ".", "http://h/a/..json", ""},
		{"dots in the query are data", "http://h/a?p=${v}", false, "..", "http://h/a?p=..", ""},
		{"empty path value", "http://h/a/${v}/b", false, "", "http://h/a//b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := mustCompile(t, config.Rule{Name: "f", On: on,
				Fetch: []config.Fetcher{{URL: tt.url, Returns: "r", Raw: tt.raw}},
				Make:  []config.Maker{mk("${r.x}", "q", "")}})
			ms := rs.Match(tt.event)
			if len(ms) != 1 {
				t.Fatalf("%d matches, want 1", len(ms))
			}
			reqs, err := ms[0].FetchRequests()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || reqs != nil {
					t.Fatalf("FetchRequests() = %+v, %v; want an error containing %q", reqs, err, tt.err)
				}
				return
			}
			if err != nil || len(reqs) != 1 || reqs[0].URL != tt.want {
				t.Fatalf("FetchRequests() = %+v, %v; want %q", reqs, err, tt.want)
			}
			// A value that does not fit in the host makes an invalid URL,
			// refused by the fetch; every other URL parses.
			_, err = url.Parse(reqs[0].URL)
			if invalid := strings.HasPrefix(tt.name, "host cannot"); (err != nil) != invalid {
				t.Errorf("url.Parse(%q): error %v, want one: %v", reqs[0].URL, err, invalid)
			}
		})
	}
}

// TestFetchURLParts: what url.Parse makes of escaped URLs is what the rule
// says, whatever the value.
func TestFetchURLParts(t *testing.T) {
	rs := mustCompile(t, config.Rule{Name: "f", On: `(?s)^(?P<v>.*)$`,
		Fetch: []config.Fetcher{{URL: "http://h/items/${v}/c?id=${v}&x=1#${v}", Returns: "r"}},
		Make:  []config.Maker{mk("", "q", "")}})
	for _, v := range []string{"a/b?c#d", "../..", "%2F", "a b&c=d", "x#y?z", "東京", "\x00\n"} {
		ms := rs.Match(v)
		if len(ms) != 1 {
			t.Fatalf("%q: %d matches, want 1", v, len(ms))
		}
		reqs, err := ms[0].FetchRequests()
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		u, err := url.Parse(reqs[0].URL)
		if err != nil {
			t.Fatalf("%q: url.Parse(%q): %v", v, reqs[0].URL, err)
		}
		q := u.Query()
		if u.Host != "h" || u.Path != "/items/"+v+"/c" || q.Get("id") != v || q.Get("x") != "1" || len(q) != 2 || u.Fragment != v {
			t.Errorf("%q: %q parses as host %q, path %q, query %q, fragment %q", v, reqs[0].URL, u.Host, u.Path, q, u.Fragment)
		}
		if segs := strings.Split(u.EscapedPath(), "/"); len(segs) != 4 {
			t.Errorf("%q: path %q has %d segments, want 4", v, u.EscapedPath(), len(segs))
		}
	}
}

// TestFetchRequestSettings: a request carries its fetcher's settings, nil
// for a fetcher without (built by hand).
func TestFetchRequestSettings(t *testing.T) {
	s := config.DefaultFetchSettings()
	s.Timeout = time.Second
	rs := mustCompile(t, config.Rule{Name: "f", On: `x`,
		Fetch: []config.Fetcher{{URL: "http://h/a", Returns: "a"}, {URL: "http://h/b", Returns: "b", Settings: s}},
		Make:  []config.Maker{mk("", "q", "")}})
	reqs, err := rs.Match("x")[0].FetchRequests()
	if err != nil || len(reqs) != 2 {
		t.Fatalf("FetchRequests() = %v, %v", reqs, err)
	}
	if reqs[0].Settings != nil || reqs[1].Settings == nil || *reqs[1].Settings != s {
		t.Errorf("settings %v and %v, want nil and %+v", reqs[0].Settings, reqs[1].Settings, s)
	}
}
