package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/rules"
)

// loaded is a configuration with its compiled rules, one Ruleset a watcher.
type loaded struct {
	cfg   *config.Config
	rules []*rules.Ruleset
}

// load loads and compiles the configuration at path, reporting every
// problem of both steps together: the rules of a file with structural
// problems are compiled too, and their problems reported unless the loader
// already reported one at the same place.
func load(path string) (*loaded, error) {
	cfg, err := config.LoadPartial(path)
	var problems config.Problems
	if err != nil && (cfg == nil || !errors.As(err, &problems)) {
		return nil, err
	}
	reported := make(map[string]bool, len(problems))
	for _, p := range problems {
		reported[p.Path] = true
	}
	l := &loaded{cfg: cfg}
	for _, w := range cfg.Watchers {
		rs, ps := rules.Compile(path, w)
		for _, p := range ps {
			if !reported[p.Path] {
				problems = append(problems, p)
			}
		}
		l.rules = append(l.rules, rs)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return l, nil
}

// reportLoad prints a load error, problem by problem, and returns the exit
// error of a bad configuration.
func reportLoad(stderr io.Writer, err error) error {
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Fprintln(stderr, p)
		}
		return &exitError{code: 1, msg: fmt.Sprintf("%d problem(s) in the configuration", len(ps))}
	}
	return &exitError{code: 1, msg: err.Error()}
}

// newFlags is the flag set of a subcommand, printing to stderr.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// positional parses args with fs and returns the positional arguments,
// which must be exactly n, or at least n when more is set; otherwise, or
// on a bad flag (which fs reported), it returns the usage error (exit 2).
func positional(fs *flag.FlagSet, args []string, n int, more bool, usage string) ([]string, error) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, &exitError{code: 2}
	}
	if len(pos) < n || len(pos) > n && !more {
		return nil, &exitError{code: 2, msg: usage}
	}
	return pos, nil
}

// parseInterleaved parses flags that may come before or after the
// positional arguments (resc run CONFIG --replica-id a), which the flag
// package alone does not.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
