package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
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
		Path:                 l.file,
		KeyPrefix:            DefaultKeyPrefix,
		ListenerStreamMaxLen: DefaultListenerStreamMaxLen,
		MaxEventBytes:        DefaultMaxEventBytes,
		Fetch:                DefaultFetchSettings(),
		Cluster:              DefaultClusterSettings(),
	}
	o, ok := root.(*object)
	if !ok {
		l.add("", "", "the configuration must be an object, not "+kind(root))
		return c
	}
	l.walk("", "", o, []field{
		{name: "redis", set: func(p string, v any) {
			if o, ok := l.obj(p, "", v); ok {
				l.walk(p, "", o, l.redisFields(&c.Redis))
			}
		}},
		{name: "listener_channel", set: func(p string, v any) {
			c.ListenerChannel, _ = l.str(p, "", v)
		}},
		{name: "listener_stream", set: func(p string, v any) {
			c.ListenerStream, _ = l.str(p, "", v)
		}},
		{name: "listener_stream_maxlen", set: func(p string, v any) {
			if n, ok := l.positive(p, "", v, 1<<40); ok {
				c.ListenerStreamMaxLen = n
			}
		}},
		{name: "max_event_bytes", set: func(p string, v any) {
			if n, ok := l.positive(p, "", v, MaxMaxEventBytes); ok {
				c.MaxEventBytes = n
			}
		}},
		{name: "key_prefix", set: func(p string, v any) {
			if s, ok := l.nonEmpty(p, "", v); ok {
				c.KeyPrefix = s
			}
		}},
		{name: "http_addr", set: func(p string, v any) {
			c.HTTPAddr, _ = l.str(p, "", v)
			if c.HTTPAddr != "" && c.HTTPAddr != "off" {
				if err := CheckListenAddr(c.HTTPAddr); err != nil {
					l.add(p, "", err.Error()+`, or "off"`)
				}
			}
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
	l.redisRelations(c.Redis)
	l.listenerStream(c)
	l.fetchSettings(c)
	l.clusterRelations(c.Cluster)
	return c
}

// watcherRedis walks a watcher's own redis object (deprecated): only its
// url counts.
func (l *loader) watcherRedis(path string, v any) {
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
		l.add(path, "", fmt.Sprintf("%q must start with redis://, rediss:// or unix://", RedactURL(u)))
		return
	}
	if err := CheckRedisURL(u); err != nil {
		l.add(path, "", "the Redis URL cannot be used: "+err.Error())
		return
	}
	switch {
	case l.redisURL == "":
		l.redisURL, l.redisURLPath = u, path
	case u != l.redisURL:
		l.add(path, "", fmt.Sprintf("watchers use different Redis URLs; resc-go uses one Redis: %q here, %q at %s",
			RedactURL(u), RedactURL(l.redisURL), l.redisURLPath))
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

// listenerStream checks listener_stream against the queues of the
// watchers: one key cannot be both a stream and a list.
func (l *loader) listenerStream(c *Config) {
	s := c.ListenerStream
	if s == "" {
		return
	}
	for _, w := range c.Watchers {
		if s == w.InputQueue || s == w.TakenQueue {
			l.add("listener_stream", "", fmt.Sprintf(
				"%q is a queue of watchers[%d]: the listener stream needs a key of its own", s, w.Index))
		}
	}
}
