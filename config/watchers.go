package config

import "fmt"

// The watchers, their rules, fetchers and make entries.

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
			l.watcherRedis(p, v)
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
