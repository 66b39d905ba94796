package config

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// The sections of fetch and cluster settings: their keys, defaults and the
// rules that tie two keys together.

// fetchKeys are the fetch settings that the top-level fetch object or a
// fetcher gives, kept until the whole file is read: a fetcher's settings are
// the top-level ones with its own over them, and the top-level fetch object
// may come after the watchers.
type fetchKeys struct {
	path, rule string
	keys       []string               // the keys given, with a valid value
	changes    []func(*FetchSettings) // what each of them sets
}

// fetchFields are the fields of the fetch settings keys in the object at
// path (the top-level fetch, or a fetcher of rule): each valid value is kept
// in l.fetchKeys[path].
func (l *loader) fetchFields(path, rule string) []field {
	fk := &fetchKeys{path: path, rule: rule}
	l.fetchKeys[path] = fk
	keep := func(key string, change func(*FetchSettings)) {
		fk.keys = append(fk.keys, key)
		fk.changes = append(fk.changes, change)
	}
	ms := func(key string, dst func(*FetchSettings) *time.Duration) field {
		return field{name: key, set: func(p string, v any) {
			if n, ok := l.positive(p, rule, v, maxTimeoutMS); ok {
				keep(key, func(f *FetchSettings) { *dst(f) = time.Duration(n) * time.Millisecond })
			}
		}}
	}
	count := func(key string, lo, hi int64, want string, dst func(*FetchSettings) *int) field {
		return field{name: key, set: func(p string, v any) {
			if n, ok := l.integer(p, rule, v, lo, hi, want); ok {
				keep(key, func(f *FetchSettings) { *dst(f) = int(n) })
			}
		}}
	}
	return []field{
		ms("timeout_ms", func(f *FetchSettings) *time.Duration { return &f.Timeout }),
		count("retries", 0, math.MaxInt32, "an integer >= 0", func(f *FetchSettings) *int { return &f.Retries }),
		{name: "max_body_bytes", set: func(p string, v any) {
			if n, ok := l.positive(p, rule, v, math.MaxInt64); ok {
				keep("max_body_bytes", func(f *FetchSettings) { f.MaxBody = n })
			}
		}},
		ms("backoff_min_ms", func(f *FetchSettings) *time.Duration { return &f.BackoffMin }),
		ms("backoff_max_ms", func(f *FetchSettings) *time.Duration { return &f.BackoffMax }),
		count("breaker_failures", 0, MaxBreakerCount, "an integer >= 0", func(f *FetchSettings) *int { return &f.BreakerFailures }),
		ms("breaker_open_ms", func(f *FetchSettings) *time.Duration { return &f.BreakerOpen }),
		count("breaker_half_open_requests", 1, MaxBreakerCount, "a positive integer", func(f *FetchSettings) *int { return &f.BreakerHalfOpen }),
	}
}

// rescheduleFields are the keys of the top-level fetch object that only it
// has: how an event whose fetch failed is scheduled again (per event, so not
// per fetcher).
func (l *loader) rescheduleFields(r *RescheduleSettings) []field {
	ms := func(dst *time.Duration) func(string, any) {
		return func(p string, v any) {
			if n, ok := l.positive(p, "", v, maxTimeoutMS); ok {
				*dst = time.Duration(n) * time.Millisecond
			}
		}
	}
	return []field{
		{name: "attempts", set: func(p string, v any) {
			if n, ok := l.integer(p, "", v, 1, 1000, "an integer from 1 to 1000"); ok {
				r.Attempts = int(n)
			}
		}},
		{name: "reschedule_delay_ms", set: ms(&r.Delay)},
		{name: "reschedule_max_delay_ms", set: ms(&r.MaxDelay)},
	}
}

// fetchSettings sets the top-level fetch settings and those of each
// fetcher, now that the whole file is read.
func (l *loader) fetchSettings(c *Config) {
	r, def := &c.Reschedule, DefaultRescheduleSettings()
	if r.Delay > 0 || r.MaxDelay > 0 {
		d, m := cmp.Or(r.Delay, def.Delay), cmp.Or(r.MaxDelay, def.MaxDelay)
		if m < d {
			key := "reschedule_max_delay_ms"
			if r.MaxDelay == 0 {
				key = "reschedule_delay_ms"
			}
			l.add(join("fetch", key), "", fmt.Sprintf("reschedule_max_delay_ms (%d) must be at least reschedule_delay_ms (%d)", m.Milliseconds(), d.Milliseconds()))
		}
	}
	r.Attempts, r.Delay, r.MaxDelay = cmp.Or(r.Attempts, def.Attempts), cmp.Or(r.Delay, def.Delay), cmp.Or(r.MaxDelay, def.MaxDelay)
	c.Fetch = l.fetchKeys["fetch"].over(l, DefaultFetchSettings())
	for i := range c.Watchers {
		for j := range c.Watchers[i].Rules {
			fs := c.Watchers[i].Rules[j].Fetch
			for k := range fs {
				fs[k].Settings = l.fetchKeys[fs[k].Path].over(l, c.Fetch)
			}
		}
	}
}

// over returns base with the keys of fk set, and reports backoff bounds that
// contradict each other at the key of fk that makes them so (when fk gives
// neither, base itself was reported). A nil fk gives nothing.
func (fk *fetchKeys) over(l *loader, base FetchSettings) FetchSettings {
	if fk == nil {
		return base
	}
	for _, change := range fk.changes {
		change(&base)
	}
	if base.BackoffMin > base.BackoffMax {
		minMS, maxMS := base.BackoffMin.Milliseconds(), base.BackoffMax.Milliseconds()
		switch {
		case slices.Contains(fk.keys, "backoff_min_ms"):
			l.add(join(fk.path, "backoff_min_ms"), fk.rule, fmt.Sprintf("must be at most backoff_max_ms (%d), not %d", maxMS, minMS))
		case slices.Contains(fk.keys, "backoff_max_ms"):
			l.add(join(fk.path, "backoff_max_ms"), fk.rule, fmt.Sprintf("must be at least backoff_min_ms (%d), not %d", minMS, maxMS))
		}
	}
	return base
}

// clusterSettings walks the cluster object over the defaults in cs; each
// key given is remembered in l.clusterKeys for clusterRelations.
func (l *loader) clusterSettings(path string, v any, cs *ClusterSettings) {
	o, ok := l.obj(path, "", v)
	if !ok {
		return
	}
	ms := func(dst *time.Duration) func(string, any) {
		return func(p string, v any) {
			if n, ok := l.positive(p, "", v, maxTimeoutMS); ok {
				*dst = time.Duration(n) * time.Millisecond
				l.clusterKeys = append(l.clusterKeys, p)
			}
		}
	}
	l.walk(path, "", o, []field{
		{name: "heartbeat_interval_ms", set: ms(&cs.HeartbeatInterval)},
		{name: "dead_after_ms", set: ms(&cs.DeadAfter)},
		{name: "leader_ttl_ms", set: ms(&cs.LeaderTTL)},
		{name: "scan_interval_ms", set: ms(&cs.ScanInterval)},
		{name: "replay_delay_ms", set: ms(&cs.ReplayDelay)},
		{name: "max_replays", set: func(p string, v any) {
			if n, ok := l.integer(p, "", v, 0, 1000, "an integer from 0 to 1000"); ok {
				cs.MaxReplays = int(n)
			}
		}},
		{name: "dead_retention_ms", set: func(p string, v any) {
			if n, ok := l.integer(p, "", v, 0, maxTimeoutMS, "a number of milliseconds, 0 to keep dead entries"); ok {
				cs.DeadRetention = time.Duration(n) * time.Millisecond
			}
		}},
	})
}

// clusterRelations reports cluster timings that contradict each other, at
// the key the file gave (the heartbeat interval when it gave both).
func (l *loader) clusterRelations(cs ClusterSettings) {
	if cs.HeartbeatInterval < cs.DeadAfter/2 {
		return
	}
	key := "cluster.heartbeat_interval_ms"
	if !slices.Contains(l.clusterKeys, key) && slices.Contains(l.clusterKeys, "cluster.dead_after_ms") {
		key = "cluster.dead_after_ms"
	}
	l.add(key, "", fmt.Sprintf("heartbeat_interval_ms (%d) must be below half of dead_after_ms (%d): a replica needs two heartbeats of margin to stop working before the others consider it dead",
		cs.HeartbeatInterval.Milliseconds(), cs.DeadAfter.Milliseconds()))
}
