// Command resc-load is resc-go's load generator: it starts (or targets) a
// Redis, runs N resc replicas as processes, pushes events, and prints
// throughput, push-to-task latency, replica memory, the same measurement of
// resc's own algorithm (the baseline) and the ratio between the two, and
// the verdict of the exactly-once checker. See docs/loadtest.md.
//
// Exit code 0 when the run completed and the checker found every task
// exactly once, 1 when the run failed or the checker found a problem (the
// report is still printed), 2 for a usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/resc-go/resc/loadtest"
)

type repeated []string

func (r *repeated) String() string     { return fmt.Sprint(*r) }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o loadtest.Options
	var set, baseline, asJSON, quiet bool
	var masters int
	var k6Args repeated
	fs := flag.NewFlagSet("resc-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: resc-load [flags]\n\nModes: throughput (push --events as fast as possible), rate (--rate events/s for\n--duration, latency), idle (--events single events --gap apart, latency), k6\n(run --k6-script against the replicas, then check).\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Mode, "mode", "throughput", "throughput, rate, idle or k6")
	fs.IntVar(&o.Events, "events", 0, "events to push (throughput: 200000, idle: 200, rate: rate x duration)")
	fs.Float64Var(&o.Rate, "rate", 0, "rate and k6 modes: events/s offered (rate: 20000; k6: 0 = as fast as k6 can)")
	fs.DurationVar(&o.Duration, "duration", 0, "rate and k6 modes: how long to push (rate: --events instead when 0; k6: 10s)")
	fs.DurationVar(&o.Gap, "gap", 0, "idle mode: pause between events (20ms)")
	fs.IntVar(&o.Replicas, "replicas", 1, "resc processes")
	fs.BoolVar(&set, "set", true, "the rule deduplicates through a sorted set; --set=false to let the checker see duplicates")
	fs.BoolVar(&o.Listener, "listener", false, "turn the listener channel on")
	fs.StringVar(&o.Observe, "observe", "pop", "how latency sees a task: pop (BLMPOP on the task queue) or listener (SUBSCRIBE, implies --listener)")
	fs.StringVar(&o.Feed, "feed", "preload", "throughput mode: preload (events renamed into the input queue at once) or live (pushed during the run)")
	fs.DurationVar(&o.FetchDelay, "fetch", 0, "give the rule a fetch of a local HTTP service answering after this delay (e.g. 10ms)")
	fs.IntVar(&o.Concurrency, "concurrency", 0, "watcher concurrency (0: resc-go's default)")
	fs.IntVar(&o.FetchConcurrency, "fetch-concurrency", 0, "watcher fetch_concurrency (0: resc-go's default)")
	fs.IntVar(&o.BatchSize, "batch-size", 0, "watcher batch_size (0: resc-go's default)")
	fs.BoolVar(&baseline, "baseline", true, "also measure resc's algorithm (the baseline) and print the ratio")
	fs.IntVar(&o.BaselineEvents, "baseline-events", 0, "events of the baseline (default: min(events, 20000), 300 with --fetch)")
	fs.IntVar(&o.Warmup, "warmup", 0, "events handled before the measurement (2000; -1: none)")
	fs.DurationVar(&o.RSSInterval, "rss-interval", 0, "replica memory sampling interval (1s)")
	fs.DurationVar(&o.StallTimeout, "stall-timeout", 0, "fail when no task appears for this long (30s)")
	fs.StringVar(&o.RedisURL, "redis-url", "", "use this Redis instead of a private redis-server (only the run's keys are written, then deleted)")
	fs.StringVar(&o.Resc, "resc", "", "the resc binary (default: go build of the resc-go working tree's cmd/resc)")
	fs.StringVar(&o.PprofDir, "pprof", "", "write a CPU profile of replica lt-1 during the measurement, and Redis command statistics, to this directory")
	fs.IntVar(&o.PprofSeconds, "pprof-seconds", 0, "length of the CPU profile (5)")
	fs.StringVar(&o.K6, "k6", "", "k6 mode: the k6 binary (k6 on PATH)")
	fs.StringVar(&o.K6Script, "k6-script", "", "k6 mode: the script (loadtest/k6/push.js)")
	fs.Var(&k6Args, "k6-arg", "k6 mode: one more argument of k6 run (repeatable)")
	fs.IntVar(&masters, "cluster", 0, "start a Redis Cluster of this many masters (1-16), one watcher each, and measure throughput mode with the Redis CPU time per event of each master (takes --events, --replicas, --warmup, --concurrency, --batch-size, --stall-timeout, --resc)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "resc-load: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	o.NoSet, o.NoBaseline, o.K6Args = !set, !baseline, k6Args
	if !quiet {
		o.Log = stderr
	}
	start := time.Now()
	if masters != 0 {
		return runCluster(ctx, fs, masters, o, asJSON, stdout, stderr, start)
	}
	rep, err := loadtest.Run(ctx, o)
	return finish(rep, rep != nil, err, asJSON, stdout, stderr, o.Log != nil, start)
}

// finish prints the report (when ok), as JSON or text, and the error, and
// returns the exit code.
func finish(rep interface{ WriteText(io.Writer) }, ok bool, err error, asJSON bool, stdout, stderr io.Writer, verbose bool, start time.Time) int {
	if ok {
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		} else {
			rep.WriteText(stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "resc-load:", err)
		return 1
	}
	if verbose {
		fmt.Fprintf(stderr, "resc-load: done in %.1f s\n", time.Since(start).Seconds())
	}
	return 0
}

// runCluster runs --cluster: throughput mode on a private cluster. Flags
// the cluster run does not take are refused rather than ignored.
func runCluster(ctx context.Context, fs *flag.FlagSet, masters int, o loadtest.Options, asJSON bool, stdout, stderr io.Writer, start time.Time) int {
	takes := map[string]bool{"cluster": true, "events": true, "replicas": true, "warmup": true, "concurrency": true,
		"batch-size": true, "stall-timeout": true, "resc": true, "json": true, "quiet": true, "baseline": true}
	var refused []string
	fs.Visit(func(f *flag.Flag) {
		if !takes[f.Name] {
			refused = append(refused, "--"+f.Name)
		}
	})
	if len(refused) > 0 {
		fmt.Fprintf(stderr, "resc-load: --cluster measures throughput on a private cluster; it does not take %v\n", refused)
		return 2
	}
	rep, err := loadtest.RunCluster(ctx, loadtest.ClusterOptions{Masters: masters, Events: o.Events, Replicas: o.Replicas,
		Warmup: o.Warmup, Concurrency: o.Concurrency, BatchSize: o.BatchSize, StallTimeout: o.StallTimeout, Resc: o.Resc, Log: o.Log})
	return finish(rep, rep != nil, err, asJSON, stdout, stderr, o.Log != nil, start)
}
