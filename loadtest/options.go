package loadtest

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Modes of a run.
const (
	ModeThroughput = "throughput"
	ModeRate       = "rate"
	ModeIdle       = "idle"
	ModeK6         = "k6"
)

// Options configure a run. Zero values take the defaults listed.
type Options struct {
	// Mode is ModeThroughput (default), ModeRate, ModeIdle or ModeK6.
	Mode string
	// Events is how many events the measurement pushes: throughput
	// (default 200000), idle (default 200), rate when Duration is 0.
	Events int
	// Rate is the offered rate of ModeRate and ModeK6 in events/s
	// (default 20000; ModeK6: 0 pushes as fast as k6 can).
	Rate float64
	// Duration, in ModeRate, pushes Rate×Duration events; in ModeK6 it is
	// how long k6 pushes (default 10 s).
	Duration time.Duration
	// Gap is the pause between two events in ModeIdle (default 20 ms).
	Gap time.Duration
	// Replicas is the number of resc processes (default 1).
	Replicas int
	// NoSet makes the rule push its tasks without a dedup set, so that the
	// checker sees duplicates. The default rule has a set, as resc's
	// introductory example.
	NoSet bool
	// Listener turns the listener channel on.
	Listener bool
	// Observe is how latency sees a task: "pop" (default) or "listener"
	// (implies Listener).
	Observe string
	// Feed is how ModeThroughput pushes: "preload" (default) or "live".
	Feed string
	// FetchDelay, when positive, gives the rule an HTTP fetch of a local
	// service answering after that delay.
	FetchDelay time.Duration
	// Concurrency, FetchConcurrency and BatchSize set the watcher's keys
	// of the same names; 0 leaves resc-go's defaults.
	Concurrency, FetchConcurrency, BatchSize int
	// NoBaseline skips the baseline (resc's algorithm).
	NoBaseline bool
	// BaselineEvents is how many events the baseline handles (default:
	// the measurement's, at most 20000, or 300 with a fetch).
	BaselineEvents int
	// Warmup is how many events each system handles before the
	// measurement (default 2000, 100 with a fetch; -1 for none).
	Warmup int
	// RSSInterval is how often replica memory is sampled (default 1 s).
	RSSInterval time.Duration
	// StallTimeout fails a run whose task count does not move for that
	// long (default 30 s).
	StallTimeout time.Duration
	// RedisURL targets an existing Redis instead of starting a private
	// one. Only keys under the run's prefix are written, and deleted at
	// the end; nothing is flushed.
	RedisURL string
	// Resc is the resc binary; default: built with go build into a
	// temporary directory.
	Resc string
	// PprofDir, when set, receives a CPU profile of the first replica
	// taken during the measurement (PprofSeconds long, default 5) and,
	// on a private Redis, its command statistics for the measurement.
	PprofDir     string
	PprofSeconds int
	// K6 is the k6 binary of ModeK6 (default "k6" on PATH), K6Script its
	// script (default loadtest/k6/push.js), K6Args more arguments of
	// `k6 run`.
	K6, K6Script string
	K6Args       []string
	// Log receives progress lines and k6's output; default io.Discard.
	Log io.Writer
}

func (o *Options) defaults() error {
	if o.Mode == "" {
		o.Mode = ModeThroughput
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Observe == "" {
		o.Observe = "pop"
	}
	if o.Observe == "listener" {
		o.Listener = true
	}
	if o.Feed == "" {
		o.Feed = "preload"
	}
	switch o.Mode {
	case ModeThroughput:
		o.Events = cmpOr(o.Events, 200000)
	case ModeIdle:
		o.Events = cmpOr(o.Events, 200)
		o.Gap = cmpOr(o.Gap, 20*time.Millisecond)
	case ModeRate:
		o.Rate = cmpOr(o.Rate, 20000)
		if o.Duration > 0 {
			o.Events = int(o.Rate * o.Duration.Seconds())
		}
		o.Events = cmpOr(o.Events, int(o.Rate)*10)
	case ModeK6:
		o.Duration = cmpOr(o.Duration, 10*time.Second)
		o.K6 = cmpOr(o.K6, "k6")
		o.K6Script = cmpOr(o.K6Script, "loadtest/k6/push.js")
	default:
		return fmt.Errorf("loadtest: unknown mode %q: want throughput, rate, idle or k6", o.Mode)
	}
	if o.BaselineEvents == 0 {
		o.BaselineEvents = min(o.Events, 20000)
		if o.FetchDelay > 0 {
			o.BaselineEvents = min(o.Events, 300)
		}
		if o.Mode == ModeK6 {
			o.BaselineEvents = 20000
		}
	}
	if o.Warmup == 0 {
		o.Warmup = 2000
		if o.FetchDelay > 0 {
			// A burst beyond the host's share of fetch slots (half the
			// watcher's concurrency) is scheduled again 5 s later.
			o.Warmup = 100
		}
	}
	o.RSSInterval = cmpOr(o.RSSInterval, time.Second)
	o.StallTimeout = cmpOr(o.StallTimeout, 30*time.Second)
	o.PprofSeconds = cmpOr(o.PprofSeconds, 5)
	if o.Log == nil {
		o.Log = io.Discard
	}
	var errs []error
	if o.Events <= 0 && o.Mode != ModeK6 {
		errs = append(errs, errors.New("events must be positive"))
	}
	if o.Replicas < 1 || o.Replicas > 100 {
		errs = append(errs, errors.New("replicas must be 1 to 100"))
	}
	if o.Rate < 0 {
		errs = append(errs, errors.New("rate must not be negative"))
	}
	if o.Observe != "pop" && o.Observe != "listener" {
		errs = append(errs, fmt.Errorf("observe %q: want pop or listener", o.Observe))
	}
	if o.Feed != "preload" && o.Feed != "live" {
		errs = append(errs, fmt.Errorf("feed %q: want preload or live", o.Feed))
	}
	return errors.Join(errs...)
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
