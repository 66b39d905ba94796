package rules

import (
	"fmt"
	"reflect"
	"sync"
	"testing"

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
		if ms[i].Rule().HasFetch() || ms[i].FetchURLs() != nil {
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
	if got, want := m.FetchURLs(), []string{"http://h/a/42?k=obj", "http://h/b/obj/42"}; !reflect.DeepEqual(got, want) {
		t.Errorf("FetchURLs() = %q, want %q", got, want)
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
