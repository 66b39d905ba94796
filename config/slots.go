package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/resc-go/resc/internal/keyspace"
)

// ClusterSlots is the number of hash slots of a Redis Cluster.
const ClusterSlots = keyspace.ClusterSlots

// variable stands for a part of a key known only at run time (a replica
// id, an event, a task, a pattern's variable) in the key templates of
// ClusterProblems.
const variable = "\x00"

var patternVariable = regexp.MustCompile(`\$\{[^}]*\}`)

// HashInput is what Redis Cluster hashes of key (keyspace.HashInput).
func HashInput(key string) string { return keyspace.HashInput(key) }

// Slot is the hash slot of key (keyspace.Slot), as CLUSTER KEYSLOT
// computes it.
func Slot(key string) int { return keyspace.Slot(key) }

// templateHash is the hash input of every key a template (variable parts
// marked) can make, and false when it depends on a variable part: one
// before the first fixed '{' (it could hold a '{' of its own) or inside
// the tag.
func templateHash(t string) (string, bool) {
	open := strings.IndexByte(t, '{')
	if open < 0 {
		return t, !strings.Contains(t, variable)
	}
	if strings.Contains(t[:open], variable) {
		return "", false
	}
	n := strings.IndexByte(t[open+1:], '}')
	if n < 0 || strings.Contains(t[open+1:open+1+n], variable) {
		return "", false // the closing brace, or the tag, is the event's
	}
	if n == 0 {
		return t, !strings.Contains(t, variable) // "{}": the whole key
	}
	return t[open+1 : open+1+n], true
}

// ClusterProblems reports every watcher whose keys cannot all live in one
// hash slot of a Redis Cluster, where each of resc-go's scripts must run:
// its input queue, taken lists and dead-letter list, the internal keys its
// commit and recovery touch (delay schedule, fetch attempts, oversized
// events, trace contexts), the listener stream, and every queue and set
// its rules make, with the keys of the Go worker SDK on those queues.
// The input queue's hash tag decides; internal keys follow it as long as
// key_prefix has no tag of its own.
func ClusterProblems(c *Config) Problems {
	var ps Problems
	add := func(path, rule, msg string) {
		ps = append(ps, Problem{File: c.Path, Path: path, Rule: rule, Message: msg})
	}
	if strings.ContainsAny(c.KeyPrefix, "{}") {
		add("key_prefix", "", fmt.Sprintf("%q has a hash tag, which would put the internal keys of every watcher in its slot: "+
			"on Redis Cluster use a prefix without braces; the internal keys then follow each watcher's tag", c.KeyPrefix))
		return ps
	}
	p := c.KeyPrefix
	for i, w := range c.Watchers {
		wpath := fmt.Sprintf("watchers[%d]", i)
		tag, ok := templateHash(w.InputQueue)
		if !ok || tag == w.InputQueue {
			add(wpath+".input_queue", "", fmt.Sprintf("%q has no hash tag: on Redis Cluster every key of a watcher must share one slot, "+
				"and its taken lists %q and internal keys (%q...) do not hash like it; give the input queue, the taken queue and "+
				"every queue and set of its rules one tag, e.g. %q and %q",
				w.InputQueue, keyspace.TakenList(w.TakenQueue, "<replica>"), keyspace.DelaySchedule(p, w.InputQueue),
				"{"+w.InputQueue+"}", "{"+w.InputQueue+"}/taken"))
			continue
		}
		slot := Slot("{" + tag + "}")
		check := func(path, rule, what, template string) {
			h, ok := templateHash(template)
			shown := strings.ReplaceAll(template, variable, "…")
			switch {
			case !ok:
				add(path, rule, fmt.Sprintf("%s %q depends on the event before or inside its hash tag, so its slot varies: "+
					"on Redis Cluster it must carry the watcher's tag {%s} before any variable", what, shown, tag))
			case h != tag:
				fix := "{" + tag + "}/" + shown
				if strings.Contains(template, "{"+h+"}") {
					fix = strings.Replace(shown, "{"+h+"}", "{"+tag+"}", 1)
				}
				add(path, rule, fmt.Sprintf("%s %q hashes to slot %d (%q), the input queue %q to slot %d ({%s}): "+
					"on Redis Cluster give it the watcher's tag, e.g. %q", what, shown, Slot("{"+h+"}"), h, w.InputQueue, slot, tag, fix))
			}
		}
		check(wpath+".taken_queue", "", "the taken list", keyspace.TakenList(w.TakenQueue, variable))
		for _, k := range []struct{ what, key string }{
			{"the dead-letter list", keyspace.DeadList(w.InputQueue)},
			{"the delay schedule", keyspace.DelaySchedule(p, w.InputQueue)},
			{"the fetch attempts", keyspace.FetchAttempts(p, w.InputQueue)},
			{"the oversized events", keyspace.Oversized(p, w.InputQueue)},
			{"an event's trace context", keyspace.TraceContext(p, w.InputQueue, variable)},
		} {
			check(wpath+".input_queue", "", k.what, k.key)
		}
		if c.ListenerStream != "" {
			check("listener_stream", "", "the listener stream (which every watcher's commit appends to)", c.ListenerStream)
		}
		for _, r := range w.Rules {
			for _, m := range r.Make {
				q := patternVariable.ReplaceAllString(m.Queue, variable)
				check(join(m.Path, "queue"), r.Name, "the task queue", q)
				if m.Set != "" {
					check(join(m.Path, "set"), r.Name, "the set", patternVariable.ReplaceAllString(m.Set, variable))
				}
				if h, ok := templateHash(q); !ok || h != tag {
					continue // reported: the queue's own keys would only repeat it
				}
				check(join(m.Path, "queue"), r.Name, "a task's trace context", keyspace.TraceContext(p, q, variable))
				check(join(m.Path, "queue"), r.Name, "a worker's taken list", keyspace.WorkerTakenList(q, variable))
				check(join(m.Path, "queue"), r.Name, "the worker failure counts", keyspace.TaskFailures(p, q))
				check(join(m.Path, "queue"), r.Name, "a worker's fence", keyspace.WorkerFence(p, q, variable))
			}
		}
	}
	return ps
}
