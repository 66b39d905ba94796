package explain_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/explain"
	"github.com/resc-go/resc/rules"
)

// fakeFetcher answers from a table and records the URLs asked.
type fakeFetcher struct {
	results map[string][]map[string]string
	errs    map[string]error
	asked   []string
}

func (f *fakeFetcher) Fetch(_ context.Context, url string, _ *config.FetchSettings) ([]map[string]string, error) {
	f.asked = append(f.asked, url)
	if err, ok := f.errs[url]; ok {
		return nil, err
	}
	return f.results[url], nil
}

func compile(t *testing.T, w config.Watcher) explain.Watcher {
	t.Helper()
	rs, problems := rules.Compile("test.hjson", w)
	if problems != nil {
		t.Fatal(problems)
	}
	return explain.Watcher{InputQueue: w.InputQueue, Rules: rs}
}

// products has a rule with two fetchers, whose results each make their
// own tasks, and a rule without fetch.
func products(t *testing.T) explain.Watcher {
	return compile(t, config.Watcher{
		InputQueue: "products",
		Rules: []config.Rule{
			{
				Name: "enrich",
				On:   `^prod/(?P<id>\d+)$`,
				Fetch: []config.Fetcher{
					{URL: "http://api/p/${id}", Returns: "p"},
					{URL: "http://api/stock/${id}", Returns: "s"},
				},
				Make: []config.Maker{
					{Task: "name/${id}/${p.name}", Queue: "names", Set: "names-set"},
					{Task: "stock/${id}/${s.where}", Queue: "stock/${s.where}"},
				},
			},
			{
				// Unnamed: resc's "<anonymous rule>".
				On:   `^prod/`,
				Make: []config.Maker{{Task: "${input_task}", Queue: "all"}},
			},
		},
	})
}

func TestExplainFetch(t *testing.T) {
	f := &fakeFetcher{results: map[string][]map[string]string{
		"http://api/p/7":     {{"name": "widget"}},
		"http://api/stock/7": {{"where": "north"}, {"where": "south"}},
	}}
	var out strings.Builder
	if err := explain.Explain(t.Context(), &out, []explain.Watcher{products(t)}, []string{"prod/7"}, f); err != nil {
		t.Fatal(err)
	}
	want := `event "prod/7"
  on products:
    rule "enrich" matches
      vars: input_task="prod/7" id="7"
      fetch GET http://api/p/7: 1 result(s)
      fetch GET http://api/stock/7: 2 result(s)
      task "name/7/widget" -> queue "names" (deduplicated by set "names-set")
      task "stock/7/north" -> queue "stock/north"
      task "stock/7/south" -> queue "stock/south"
    rule "<anonymous rule>" matches
      vars: input_task="prod/7"
      task "prod/7" -> queue "all"
`
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if want := []string{"http://api/p/7", "http://api/stock/7"}; strings.Join(f.asked, " ") != strings.Join(want, " ") {
		t.Errorf("fetched %q, want %q", f.asked, want)
	}
}

func TestExplainNoFetcher(t *testing.T) {
	var out strings.Builder
	if err := explain.Explain(t.Context(), &out, []explain.Watcher{products(t)}, []string{"prod/7"}, nil); err != nil {
		t.Fatal(err)
	}
	want := `event "prod/7"
  on products:
    rule "enrich" matches
      vars: input_task="prod/7" id="7"
      fetch GET http://api/p/7 (not called: use --fetch)
      fetch GET http://api/stock/7 (not called: use --fetch)
    rule "<anonymous rule>" matches
      vars: input_task="prod/7"
      task "prod/7" -> queue "all"
`
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestExplainFetchFails(t *testing.T) {
	f := &fakeFetcher{
		results: map[string][]map[string]string{"http://api/p/7": {{"name": "widget"}}},
		errs:    map[string]error{"http://api/stock/7": errors.New("404 Not Found")},
	}
	var out strings.Builder
	if err := explain.Explain(t.Context(), &out, []explain.Watcher{products(t)}, []string{"prod/7"}, f); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, "      fetch GET http://api/stock/7 failed: 404 Not Found (the event would go to the dead-letter list)\n") {
		t.Errorf("no failure line in:\n%s", got)
	}
	// The whole event goes to the dead-letter list: it makes no task at all.
	if strings.Contains(got, "task ") {
		t.Errorf("tasks shown for an event whose fetch fails:\n%s", got)
	}
}

func TestExplainEmptyResults(t *testing.T) {
	f := &fakeFetcher{} // every URL answers no result
	var out strings.Builder
	if err := explain.Explain(t.Context(), &out, []explain.Watcher{products(t)}, []string{"prod/1"}, f); err != nil {
		t.Fatal(err)
	}
	if want := "      fetch GET http://api/stock/1: 0 result(s)\n      makes no task\n"; !strings.Contains(out.String(), want) {
		t.Errorf("got:\n%s\nwant it to contain:\n%s", out.String(), want)
	}
}

// TestExplainQuotes: events and values are quoted, so that spaces, quotes and
// control characters are visible.
func TestExplainQuotes(t *testing.T) {
	w := compile(t, config.Watcher{
		InputQueue: "in",
		Rules: []config.Rule{{
			Name: `say "hi"`,
			On:   `^say (?P<what>.*)$`,
			Make: []config.Maker{{Task: "${what}", Queue: "q ${what}"}},
		}},
	})
	var out strings.Builder
	if err := explain.Explain(t.Context(), &out, []explain.Watcher{w}, []string{"say a \"b\"\tc", "\n"}, nil); err != nil {
		t.Fatal(err)
	}
	want := `event "say a \"b\"\tc"
  on in:
    rule "say \"hi\"" matches
      vars: input_task="say a \"b\"\tc" what="a \"b\"\tc"
      task "a \"b\"\tc" -> queue "q a \"b\"\tc"
event "\n"
  on in: no rule matches
`
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestExplainWriteError(t *testing.T) {
	err := explain.Explain(t.Context(), failingWriter{}, []explain.Watcher{products(t)}, []string{"prod/1"}, nil)
	if err == nil || err.Error() != "disk full" {
		t.Errorf("err = %v, want the writer's error", err)
	}
}

// TestExplainEscapedURLs: explain shows, and fetches, the URLs with their
// values escaped, and says when a value cannot be put in its URL.
func TestExplainEscapedURLs(t *testing.T) {
	w := compile(t, config.Watcher{
		InputQueue: "in",
		Rules: []config.Rule{{
			Name:  "doc",
			On:    `^doc/(?P<path>.+)$`,
			Fetch: []config.Fetcher{{URL: "http://api/docs/${path}?v=${path}", Returns: "d"}},
			Make:  []config.Maker{{Task: "${d.id}", Queue: "q"}},
		}},
	})
	f := &fakeFetcher{}
	var out strings.Builder
	if err := explain.Explain(t.Context(), &out, []explain.Watcher{w}, []string{"doc/a/b?c d", "doc/.."}, f); err != nil {
		t.Fatal(err)
	}
	want := `event "doc/a/b?c d"
  on in:
    rule "doc" matches
      vars: input_task="doc/a/b?c d" path="a/b?c d"
      fetch GET http://api/docs/a%2Fb%3Fc%20d?v=a%2Fb%3Fc+d: 0 result(s)
      makes no task
event "doc/.."
  on in:
    rule "doc" matches
      vars: input_task="doc/.." path=".."
      fetch URL of "d": ${path} is "..", a path segment that would change the path (the event would go to the dead-letter list)
`
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if want := "http://api/docs/a%2Fb%3Fc%20d?v=a%2Fb%3Fc+d"; len(f.asked) != 1 || f.asked[0] != want {
		t.Errorf("fetched %q, want only %q", f.asked, want)
	}
}
