package loadtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/resc-go/resc/internal/keyspace"
)

// keys are the Redis names of one system under test (the resc-go replicas,
// or the baseline), all under one prefix "lt/<run id>/" (plus "base/" for
// the baseline), so that a run on a shared server touches and deletes only
// its own keys.
type keys struct {
	prefix   string // every key below starts with it
	input    string // the input queue events are pushed to
	taken    string // the watcher's taken_queue
	staging  string // preloaded events, renamed to input at the start
	tasks    string // the task queue of the rule
	set      string // the rule's dedup set (when the rule has one)
	channel  string // the listener channel (always published to by the baseline)
	internal string // resc-go's key_prefix
}

func newKeys(prefix string) keys {
	return keys{
		prefix:   prefix,
		input:    prefix + "in",
		taken:    prefix + "in/taken",
		staging:  prefix + "staging",
		tasks:    prefix + "tasks",
		set:      prefix + "tasks-set",
		channel:  prefix + "events",
		internal: prefix + "resc:",
	}
}

// deadList is the input queue's dead-letter list.
func (k keys) deadList() string { return keyspace.DeadList(k.input) }

// Event format: "acq/<seq>/<stamp>", seq counting events from 0 in a
// measurement and stamp the Unix time in nanoseconds at which the event was
// pushed. The rule turns it into the task "trt/<seq>/<stamp>" (plus
// "/<fetched value>" with a fetch), so that a task names its event and the
// time it was pushed.
const eventRegexp = `^acq/(?P<seq>\d+)/(?P<ts>\d+)$`

func eventText(seq int, stamp int64) string {
	return "acq/" + strconv.Itoa(seq) + "/" + strconv.FormatInt(stamp, 10)
}

// parseTask returns the seq and stamp of a task "trt/<seq>/<stamp>[/...]"
// (or of an event "acq/<seq>/<stamp>").
func parseTask(task string) (seq int, stamp int64, ok bool) {
	_, rest, found := strings.Cut(task, "/")
	if !found {
		return 0, 0, false
	}
	s, rest, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	ts, _, _ := strings.Cut(rest, "/")
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, 0, false
	}
	st, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return n, st, true
}

// ruleShape is what the generated configuration's rule does.
type ruleShape struct {
	set      bool   // deduplicate through a sorted set
	listener bool   // listener_channel on
	fetchURL string // "" for no fetch; else the fetch server's base URL
	// Watcher settings; 0 leaves resc-go's default.
	concurrency, fetchConcurrency, batchSize int
}

// writeConfig writes the resc-go configuration of one system to dir and
// returns its path. It is JSON, which resc-go reads as resc did.
func writeConfig(dir, name, redisURL string, k keys, s ruleShape) (string, error) {
	cfg := map[string]any{
		"redis":      map[string]any{"url": redisURL},
		"key_prefix": k.internal,
		"watchers":   []any{watcherConfig(k, s)},
	}
	if s.listener {
		cfg["listener_channel"] = k.channel
	}
	return writeConfigFile(dir, name, cfg)
}

// watcherConfig is the watcher of one system: its input queue, taken
// queue and rule, as s shapes them.
func watcherConfig(k keys, s ruleShape) map[string]any {
	mk := map[string]any{
		"task":  "trt/${seq}/${ts}",
		"queue": k.tasks,
	}
	if s.set {
		mk["set"] = k.set
	}
	rule := map[string]any{
		"name": "load",
		"on":   eventRegexp,
		"make": mk,
	}
	if s.fetchURL != "" {
		rule["fetch"] = []any{map[string]any{"url": s.fetchURL + "/v/${seq}", "returns": "r"}}
		mk["task"] = "trt/${seq}/${ts}/${r.v}"
	}
	w := map[string]any{
		"input_queue": k.input,
		"taken_queue": k.taken,
		"rules":       []any{rule},
	}
	for key, v := range map[string]int{"concurrency": s.concurrency, "fetch_concurrency": s.fetchConcurrency, "batch_size": s.batchSize} {
		if v > 0 {
			w[key] = v
		}
	}
	return w
}

// writeConfigFile writes cfg as dir/name.json and returns its path.
func writeConfigFile(dir, name string, cfg map[string]any) (string, error) {
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", fmt.Errorf("loadtest: configuration: %w", err)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", fmt.Errorf("loadtest: %w", err)
	}
	return path, nil
}

// clock gives Unix nanosecond stamps that advance with the monotonic clock
// from the start of the run, so that a wall clock step during a run cannot
// distort a latency. The producer stamps events and the observer stamps
// their tasks with the same clock.
type clock struct{ base time.Time }

func newClock() clock { return clock{base: time.Now()} }

func (c clock) now() int64 { return c.base.UnixNano() + int64(time.Since(c.base)) }
