package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/resc-go/resc/internal/jsonkind"
)

// Messages of the deprecated resc keys, in Config.Warnings.
const (
	taskSetIgnored = "task_set is ignored since resc 0.2: declare a set in each make entry to deduplicate"
	watcherRedis   = "a watcher's own redis is deprecated: resc-go uses one Redis for all watchers, " +
		"the top-level redis.url, and uses this url only when that one is missing"
)

// anonymousRule is the name of a rule without one, as in resc.
const anonymousRule = "<anonymous rule>"

// maxTimeoutMS is the largest timeout_ms that fits a time.Duration.
const maxTimeoutMS = math.MaxInt64 / int64(time.Millisecond)

// loader walks a parsed configuration once, building the Config and
// collecting every problem and warning in the order it meets them, which is
// file order.
type loader struct {
	file     string
	problems Problems
	warnings []Problem

	// redisURL is the first Redis URL met (top-level or a watcher's), and
	// redisURLPath where it was; every later one must be the same.
	redisURL, redisURLPath string
	// inputs and takens map the queues of the watchers met to their index.
	inputs, takens map[string]int
	// fetchKeys maps the path of the top-level fetch object and of each
	// fetcher to the fetch settings it gives, applied once the whole file
	// is read (fetchSettings).
	fetchKeys map[string]*fetchKeys
	// clusterKeys are the paths of the cluster timings the file gave.
	clusterKeys []string
}

func newLoader(file string) *loader {
	return &loader{file: file, inputs: map[string]int{}, takens: map[string]int{}, fetchKeys: map[string]*fetchKeys{}}
}

// add records a problem.
func (l *loader) add(path, rule, msg string) {
	l.problems = append(l.problems, Problem{File: l.file, Path: path, Rule: rule, Message: msg})
}

// warn records a warning.
func (l *loader) warn(path, rule, msg string) {
	l.warnings = append(l.warnings, Problem{File: l.file, Path: path, Rule: rule, Message: msg})
}

// field describes a key of an object: its name, the aliases resc accepts
// for it, whether it is required, and what to do with its value.
type field struct {
	name     string
	aliases  []string
	required bool
	set      func(path string, v any)
}

// is tells whether key names the field.
func (f *field) is(key string) bool {
	if key == f.name {
		return true
	}
	for _, a := range f.aliases {
		if key == a {
			return true
		}
	}
	return false
}

// walk goes through the members of o in file order, giving each value to its
// field, and reports unknown keys, keys given twice (directly or through an
// alias) and missing required keys. path is the path of o, rule the name of
// the rule the problems concern.
func (l *loader) walk(path, rule string, o *object, fields []field) {
	given := make(map[string]string, len(fields)) // field name -> key as given
	for _, m := range o.members {
		p := join(path, m.key)
		f := findField(fields, m.key)
		if f == nil {
			l.add(p, rule, fmt.Sprintf("unknown key %q", m.key))
			continue
		}
		if prev, dup := given[f.name]; dup {
			if prev == m.key {
				l.add(p, rule, fmt.Sprintf("duplicate key %q: give it once", m.key))
			} else {
				l.add(p, rule, fmt.Sprintf("%q and %q are the same key: give only one", prev, m.key))
			}
			continue
		}
		given[f.name] = m.key
		f.set(p, m.val)
	}
	for _, f := range fields {
		if _, ok := given[f.name]; f.required && !ok {
			l.add(join(path, f.name), rule, "is required")
		}
	}
}

func findField(fields []field, key string) *field {
	for i := range fields {
		if fields[i].is(key) {
			return &fields[i]
		}
	}
	return nil
}

// join is the path of key in the object at path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// index is the path of the i-th element of the array at path.
func index(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// kind names the JSON type of a tree value, for messages.
func kind(v any) string {
	if _, ok := v.(*object); ok {
		return "an object"
	}
	return jsonkind.Of(v)
}

// wrongType reports a value that is not of the type wanted.
func (l *loader) wrongType(path, rule, want string, v any) {
	l.add(path, rule, fmt.Sprintf("must be %s, not %s", want, kind(v)))
}

// str returns v if it is a string.
func (l *loader) str(path, rule string, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		l.wrongType(path, rule, "a string", v)
	}
	return s, ok
}

// nonEmpty returns v if it is a string that is not empty.
func (l *loader) nonEmpty(path, rule string, v any) (string, bool) {
	s, ok := l.str(path, rule, v)
	if ok && s == "" {
		l.add(path, rule, "must not be empty")
		return "", false
	}
	return s, ok
}

// integer returns v if it is an integer in [lo, hi]; want names the type
// wanted for messages ("a positive integer").
func (l *loader) integer(path, rule string, v any, lo, hi int64, want string) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		l.wrongType(path, rule, want, v)
		return 0, false
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(n.String(), "-"):
		l.add(path, rule, fmt.Sprintf("must be at most %d", hi))
	case err != nil, i < lo:
		l.add(path, rule, fmt.Sprintf("must be %s, not %s", want, n))
	case i > hi:
		l.add(path, rule, fmt.Sprintf("must be at most %d, not %s", hi, n))
	default:
		return i, true
	}
	return 0, false
}

// positive returns v if it is an integer in [1, hi].
func (l *loader) positive(path, rule string, v any, hi int64) (int64, bool) {
	return l.integer(path, rule, v, 1, hi, "a positive integer")
}

// obj returns v if it is an object.
func (l *loader) obj(path, rule string, v any) (*object, bool) {
	o, ok := v.(*object)
	if !ok {
		l.wrongType(path, rule, "an object", v)
	}
	return o, ok
}

// objects returns the elements of v if it is an array, with nil for each
// element that is not an object (reported). what names the elements for the
// message of an empty array; an empty what accepts an empty array.
func (l *loader) objects(path, rule string, v any, what string) []*object {
	a, ok := v.([]any)
	if !ok {
		l.wrongType(path, rule, "an array of objects", v)
		return nil
	}
	if len(a) == 0 && what != "" {
		l.add(path, rule, "must not be empty: give at least one "+what)
		return nil
	}
	objs := make([]*object, len(a))
	for i, e := range a {
		objs[i], _ = l.obj(index(path, i), rule, e)
	}
	return objs
}

// config walks the top-level object.
func (l *loader) config(root any) *Config {
	c := &Config{
		Path:      l.file,
		KeyPrefix: DefaultKeyPrefix,
		Fetch:     DefaultFetchSettings(),
		Cluster:   DefaultClusterSettings(),
	}
	o, ok := root.(*object)
	if !ok {
		l.add("", "", "the configuration must be an object, not "+kind(root))
		return c
	}
	l.walk("", "", o, []field{
		{name: "redis", set: l.redis},
		{name: "listener_channel", set: func(p string, v any) {
			c.ListenerChannel, _ = l.str(p, "", v)
		}},
		{name: "key_prefix", set: func(p string, v any) {
			if s, ok := l.nonEmpty(p, "", v); ok {
				c.KeyPrefix = s
			}
		}},
		{name: "http_addr", set: func(p string, v any) {
			c.HTTPAddr, _ = l.str(p, "", v)
		}},
		{name: "fetch", set: func(p string, v any) {
			if o, ok := l.obj(p, "", v); ok {
				l.walk(p, "", o, append(l.fetchFields(p, ""), l.rescheduleFields(&c.Reschedule)...))
			}
		}},
		{name: "cluster", set: func(p string, v any) {
			l.clusterSettings(p, v, &c.Cluster)
		}},
		{name: "watchers", required: true, set: func(p string, v any) {
			c.Watchers = l.watchers(p, v)
		}},
		{name: "task_set", set: func(p string, v any) {
			if _, ok := l.str(p, "", v); ok {
				l.warn(p, "", taskSetIgnored)
			}
		}},
	})
	c.RedisURL = l.redisURL
	l.fetchSettings(c)
	l.clusterRelations(c.Cluster)
	return c
}

// redis walks a redis object, top-level or (deprecated) a watcher's.
func (l *loader) redis(path string, v any) {
	o, ok := l.obj(path, "", v)
	if !ok {
		return
	}
	l.walk(path, "", o, []field{{name: "url", set: l.redisURLValue}})
}

// redisURLValue checks a redis.url and makes sure every URL given is the
// same: the first one met is the one used.
func (l *loader) redisURLValue(path string, v any) {
	u, ok := l.nonEmpty(path, "", v)
	if !ok {
		return
	}
	if !hasRedisScheme(u) {
		l.add(path, "", fmt.Sprintf("%q must start with redis://, rediss:// or unix://", u))
		return
	}
	switch {
	case l.redisURL == "":
		l.redisURL, l.redisURLPath = u, path
	case u != l.redisURL:
		l.add(path, "", fmt.Sprintf("watchers use different Redis URLs; resc-go uses one Redis: %q here, %q at %s",
			u, l.redisURL, l.redisURLPath))
	}
}

// hasRedisScheme tells whether u is a URL go-redis can dial.
func hasRedisScheme(u string) bool {
	u = strings.ToLower(u)
	for _, s := range []string{"redis://", "rediss://", "unix://"} {
		if strings.HasPrefix(u, s) {
			return true
		}
	}
	return false
}

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

// watchers walks the watchers array.
func (l *loader) watchers(path string, v any) []Watcher {
	var ws []Watcher
	for i, o := range l.objects(path, "", v, "watcher") {
		if o != nil {
			ws = append(ws, l.watcher(index(path, i), i, o))
		}
	}
	return ws
}

// watcher walks watchers[i], at path.
func (l *loader) watcher(path string, i int, o *object) Watcher {
	w := Watcher{
		Index:            i,
		Concurrency:      DefaultConcurrency,
		FetchConcurrency: DefaultFetchConcurrency,
		BatchSize:        DefaultBatchSize,
	}
	takenGiven := false
	l.walk(path, "", o, []field{
		{name: "redis", set: func(p string, v any) {
			l.warn(p, "", watcherRedis)
			l.redis(p, v)
		}},
		{name: "input_queue", required: true, set: func(p string, v any) {
			w.InputQueue, _ = l.nonEmpty(p, "", v)
		}},
		{name: "taken_queue", set: func(p string, v any) {
			takenGiven = true
			w.TakenQueue, _ = l.nonEmpty(p, "", v)
		}},
		{name: "rules", required: true, set: func(p string, v any) {
			w.Rules = l.rules(p, i, v)
		}},
		{name: "concurrency", set: func(p string, v any) {
			if n, ok := l.positive(p, "", v, MaxConcurrency); ok {
				w.Concurrency = int(n)
			}
		}},
		{name: "fetch_concurrency", set: func(p string, v any) {
			if n, ok := l.positive(p, "", v, MaxConcurrency); ok {
				w.FetchConcurrency = int(n)
			}
		}},
		{name: "batch_size", set: func(p string, v any) {
			if n, ok := l.positive(p, "", v, MaxBatchSize); ok {
				w.BatchSize = int(n)
			}
		}},
	})
	if w.InputQueue != "" && !takenGiven {
		w.TakenQueue = w.InputQueue + "/taken"
	}
	l.uniqueQueues(path, &w, takenGiven)
	return w
}

// uniqueQueues reports a watcher whose input queue or taken queue is already
// used by an earlier watcher.
func (l *loader) uniqueQueues(path string, w *Watcher, takenGiven bool) {
	inputDup := false
	if w.InputQueue != "" {
		if j, dup := l.inputs[w.InputQueue]; dup {
			inputDup = true
			l.add(join(path, "input_queue"), "", fmt.Sprintf(
				"input queue %q is already watched by watchers[%d]: each input queue is watched once", w.InputQueue, j))
		} else {
			l.inputs[w.InputQueue] = w.Index
		}
	}
	// A duplicate input queue already explains a duplicate default taken queue.
	if w.TakenQueue == "" || (inputDup && !takenGiven) {
		return
	}
	if j, dup := l.takens[w.TakenQueue]; dup {
		l.add(join(path, "taken_queue"), "", fmt.Sprintf(
			"taken queue %q is already used by watchers[%d]: each watcher needs its own", w.TakenQueue, j))
	} else {
		l.takens[w.TakenQueue] = w.Index
	}
}

// rules walks the rules array of watchers[w].
func (l *loader) rules(path string, w int, v any) []Rule {
	var rs []Rule
	for i, o := range l.objects(path, "", v, "rule") {
		if o != nil {
			rs = append(rs, l.rule(w, i, o))
		}
	}
	return rs
}

// ruleName is the name a rule gives itself, "" when it has none (or one
// that is not a string, which the walk reports).
func ruleName(o *object) string {
	v, _ := o.get("name")
	s, _ := v.(string)
	return s
}

// rule walks watchers[w].rules[i]. Every problem in it carries its name,
// wherever the name is in the object.
func (l *loader) rule(w, i int, o *object) Rule {
	name := ruleName(o)
	r := Rule{Index: i, Name: name}
	if r.Name == "" {
		r.Name = anonymousRule
	}
	l.walk(RulePath(w, i, ""), name, o, []field{
		{name: "name", set: func(p string, v any) {
			l.str(p, "", v)
		}},
		{name: "on", aliases: []string{"on_regex"}, required: true, set: func(p string, v any) {
			r.On, _ = l.nonEmpty(p, name, v)
		}},
		{name: "fetch", aliases: []string{"fetchers"}, set: func(p string, v any) {
			r.Fetch = l.fetchers(p, name, v)
		}},
		{name: "make", aliases: []string{"makers", "todo"}, required: true, set: func(p string, v any) {
			r.Make = l.makers(p, name, v)
		}},
	})
	return r
}

// fetchers walks a rule's fetch array.
func (l *loader) fetchers(path, rule string, v any) []Fetcher {
	var fs []Fetcher
	returns := map[string]int{}
	for i, o := range l.objects(path, rule, v, "") {
		if o == nil {
			continue
		}
		p := index(path, i)
		f := Fetcher{Path: p}
		l.walk(p, rule, o, append([]field{
			{name: "url", required: true, set: func(p string, v any) {
				f.URL, _ = l.nonEmpty(p, rule, v)
			}},
			{name: "returns", required: true, set: func(p string, v any) {
				f.Returns = l.returns(p, rule, v, returns, i)
			}},
			{name: "escape", set: func(p string, v any) {
				if b, ok := v.(bool); ok {
					f.Raw = !b
				} else {
					l.wrongType(p, rule, "a boolean", v)
				}
			}},
		}, l.fetchFields(p, rule)...))
		fs = append(fs, f)
	}
	return fs
}

// returns checks the returns of fetch[i]: a word, not already returned by
// another fetcher of the rule (seen maps returns to the fetcher's index).
func (l *loader) returns(path, rule string, v any, seen map[string]int, i int) string {
	s, ok := l.nonEmpty(path, rule, v)
	if !ok {
		return ""
	}
	if !isWord(s) {
		l.add(path, rule, fmt.Sprintf(
			"%q must be a word (letters, digits, _): it names the variables ${%s.key}", s, s))
		return ""
	}
	if j, dup := seen[s]; dup {
		l.add(path, rule, fmt.Sprintf("%q is already returned by fetch[%d]: each fetcher needs its own namespace", s, j))
		return ""
	}
	seen[s] = i
	return s
}

// isWord tells whether s matches ^\w+$ (ASCII letters, digits, underscore).
func isWord(s string) bool {
	for _, c := range []byte(s) {
		if !(c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// makers walks a rule's make: one object or a non-empty array of objects.
func (l *loader) makers(path, rule string, v any) []Maker {
	switch t := v.(type) {
	case *object:
		return []Maker{l.maker(path, rule, 0, t)}
	case []any:
		var ms []Maker
		for i, o := range l.objects(path, rule, v, "make entry") {
			if o != nil {
				ms = append(ms, l.maker(index(path, i), rule, i, o))
			}
		}
		return ms
	}
	l.wrongType(path, rule, "an object or a non-empty array of objects", v)
	return nil
}

// maker walks one make entry, at path.
func (l *loader) maker(path, rule string, i int, o *object) Maker {
	m := Maker{Index: i, Path: path, Task: DefaultTask}
	l.walk(path, rule, o, []field{
		{name: "name", set: func(p string, v any) {
			m.Name, _ = l.str(p, rule, v)
		}},
		{name: "task", set: func(p string, v any) {
			s, ok := l.str(p, rule, v)
			switch {
			case ok && s == "":
				l.add(p, rule, "task must not be empty: omit it for the default "+DefaultTask)
			case ok:
				m.Task = s
			}
		}},
		{name: "queue", required: true, set: func(p string, v any) {
			m.Queue, _ = l.nonEmpty(p, rule, v)
		}},
		{name: "set", set: func(p string, v any) {
			s, ok := l.str(p, rule, v)
			if ok && s == "" {
				l.add(p, rule, "set must not be empty: omit it to push without deduplication")
			}
			m.Set = s
		}},
	})
	return m
}
