package main

import (
	"fmt"
	"io"

	"github.com/resc-go/resc/config"
)

// cmdCheck is `resc check [--cluster] CONFIG`: every problem, then a
// summary; exit 1 when there is any problem. With --cluster (or
// redis.mode cluster, or a URL listing cluster nodes) the Redis Cluster
// slot rules are checked too.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	cluster := fs.Bool("cluster", false, "also check that each watcher's keys can share one Redis Cluster hash slot")
	pos, err := positional(fs, args, 1, false, "usage: resc check [--cluster] CONFIG")
	if err != nil {
		return err
	}
	l, err := load(pos[0])
	if err != nil {
		return reportLoad(stderr, err)
	}
	if *cluster || l.cfg.ClusterByFile() {
		if ps := config.ClusterProblems(l.cfg); len(ps) > 0 {
			return reportLoad(stderr, ps)
		}
	}
	for _, w := range l.cfg.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	nrules := 0
	for _, w := range l.cfg.Watchers {
		nrules += len(w.Rules)
	}
	what := ""
	if *cluster || l.cfg.ClusterByFile() {
		what = ", each watcher's keys in one Redis Cluster slot"
	}
	fmt.Fprintf(stdout, "%s: ok: %d watcher(s), %d rule(s)%s\n", pos[0], len(l.cfg.Watchers), nrules, what)
	return nil
}
