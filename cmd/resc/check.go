package main

import (
	"flag"
	"fmt"
	"io"
)

// cmdCheck is `resc check CONFIG`: every problem, then a summary; exit 1
// when there is any problem.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return &exitError{code: 2}
	}
	if len(pos) != 1 {
		return &exitError{code: 2, msg: "usage: resc check CONFIG"}
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
