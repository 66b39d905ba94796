package main

import (
	"fmt"
	"io"
)

// cmdCheck is `resc check CONFIG`: every problem, then a summary; exit 1
// when there is any problem.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	pos, err := positional(newFlags("check", stderr), args, 1, false, "usage: resc check CONFIG")
	if err != nil {
		return err
	}
	l, err := load(pos[0])
	if err != nil {
		return reportLoad(stderr, err)
	}
	for _, w := range l.cfg.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	nrules := 0
	for _, w := range l.cfg.Watchers {
		nrules += len(w.Rules)
	}
	fmt.Fprintf(stdout, "%s: ok: %d watcher(s), %d rule(s)\n", pos[0], len(l.cfg.Watchers), nrules)
	return nil
}
