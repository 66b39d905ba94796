// Package explain is `resc explain`: a dry run that shows, for each event,
// which rules of which watcher match, their variables, and the tasks,
// queues and sets the event would produce. It never writes to Redis; it
// calls fetch URLs only when given a Fetcher.
package explain

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/rules"
)

// Watcher is a watcher to explain: its input queue and compiled rules.
type Watcher struct {
	InputQueue string
	Rules      *rules.Ruleset
}

// Fetcher calls a fetch URL with its fetcher's settings (see
// watcher.Fetcher).
type Fetcher interface {
	Fetch(ctx context.Context, url string, s *config.FetchSettings) ([]map[string]string, error)
}

// Explain writes what each event would do on each watcher to out. With a nil
// fetcher, fetch rules show the URLs they would call and make nothing.
func Explain(ctx context.Context, out io.Writer, watchers []Watcher, events []string, f Fetcher) error {
	var b strings.Builder
	for _, ev := range events {
		fmt.Fprintf(&b, "event %s\n", strconv.Quote(ev))
		for _, w := range watchers {
			explainOne(ctx, &b, w, ev, f)
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}

func explainOne(ctx context.Context, b *strings.Builder, w Watcher, ev string, f Fetcher) {
	matches := w.Rules.Match(ev)
	if len(matches) == 0 {
		fmt.Fprintf(b, "  on %s: no rule matches\n", w.InputQueue)
		return
	}
	fmt.Fprintf(b, "  on %s:\n", w.InputQueue)
	for i := range matches {
		m := &matches[i]
		fmt.Fprintf(b, "    rule %s matches\n", strconv.Quote(m.Rule().Name()))
		var vars []string
		for _, v := range m.Vars() {
			vars = append(vars, v.Name+"="+strconv.Quote(v.Value))
		}
		fmt.Fprintf(b, "      vars: %s\n", strings.Join(vars, " "))
		reqs, err := m.FetchRequests()
		if err != nil {
			fmt.Fprintf(b, "      %v (the event would go to the dead-letter list)\n", err)
			return
		}
		var results [][]map[string]string
		if len(reqs) > 0 {
			results = make([][]map[string]string, len(reqs))
			for j, r := range reqs {
				if f == nil {
					fmt.Fprintf(b, "      fetch GET %s (not called: use --fetch)\n", r.URL)
					continue
				}
				res, err := f.Fetch(ctx, r.URL, r.Settings)
				if err != nil {
					fmt.Fprintf(b, "      fetch GET %s failed: %v (the event would go to the dead-letter list)\n", r.URL, err)
					return
				}
				fmt.Fprintf(b, "      fetch GET %s: %d result(s)\n", r.URL, len(res))
				results[j] = res
			}
			if f == nil {
				continue
			}
		}
		tasks := m.Make(results, nil)
		if len(tasks) == 0 {
			fmt.Fprintf(b, "      makes no task\n")
		}
		for _, t := range tasks {
			fmt.Fprintf(b, "      task %s -> queue %s", strconv.Quote(t.Task), strconv.Quote(t.Queue))
			if t.HasSet {
				fmt.Fprintf(b, " (deduplicated by set %s)", strconv.Quote(t.Set))
			}
			b.WriteString("\n")
		}
	}
}
