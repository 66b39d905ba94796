package main

import (
	"context"
	"io"

	"github.com/resc-go/resc/fetch"
	"github.com/resc-go/resc/internal/explain"
)

// cmdExplain is `resc explain [--fetch] [--queue Q] CONFIG EVENT...`.
func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("explain", stderr)
	doFetch := fs.Bool("fetch", false, "call the fetch URLs for real (GET only; still no Redis write)")
	queue := fs.String("queue", "", "explain only the watcher of this input queue")
	pos, err := positional(fs, args, 2, true, "usage: resc explain [--fetch] [--queue Q] CONFIG EVENT...")
	if err != nil {
		return err
	}
	l, err := load(pos[0])
	if err != nil {
		return reportLoad(stderr, err)
	}
	var ws []explain.Watcher
	for i, w := range l.cfg.Watchers {
		if *queue == "" || *queue == w.InputQueue {
			ws = append(ws, explain.Watcher{InputQueue: w.InputQueue, Rules: l.rules[i]})
		}
	}
	if len(ws) == 0 {
		return &exitError{code: 2, msg: "no watcher has input queue " + *queue}
	}
	var f explain.Fetcher
	if *doFetch {
		f = fetch.New(fetch.Options{Settings: l.cfg.Fetch})
	}
	return explain.Explain(ctx, stdout, ws, pos[1:], f)
}
