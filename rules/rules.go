// Package rules compiles the rules of a watcher, matches events against them
// and makes the tasks they generate. It is pure: no I/O, no clock, no logs.
//
// The semantics are resc's. For an event, every rule whose `on` regular
// expression matches somewhere in it (an unanchored search) applies, in file
// order, and each make entry of a matching rule makes a task, in order.
//
// Patterns (task, queue, set and fetch URLs) are text with ${var} references,
// var being made of ASCII letters, digits, '_' and '.'; anything else, such
// as a lone "$" or "${a-b}", is literal text. A variable is input_task (the
// whole event), a named group of `on` (the text it captured; "" when the
// group did not take part in the match), or <returns>.<key>, the property key
// of a result of the fetcher whose returns is <returns>. Values are inserted
// as they are in task, queue and set names.
//
// In a fetch URL, each value is escaped for the part of the URL it lands in,
// which is known at compile time from the literal text before it: in the
// path as a path segment (url.PathEscape: "a/b?c" stays one segment), in the
// query as a query component (url.QueryEscape), in the fragment as a path
// segment, in the host so that it cannot end the host (a "/", "?", "#" or
// "@" in the value makes the URL invalid, a permanent fetch failure). A
// variable cannot come before the "://" that ends the scheme, and a path
// segment made of variables only cannot be "." or "..": both would let an
// event choose another resource than the rule says. A fetcher with Raw
// (escape: false) inserts values as they are, as resc does.
//
// A rule with fetchers makes its tasks from the fetch results: each result of
// each fetcher yields the make entries. A make entry that uses the variables
// of a fetcher is made only for that fetcher's results; one that uses no
// fetch variable is made for every result of every fetcher; when the fetches
// return no result, the rule makes nothing. A fetch variable whose property
// the result lacks (or holds as something else than a string or a number) is
// "", like a group that did not take part in the match.
//
// Compile reports every variable that can never be defined, instead of
// resc's "-missing group!-" in the tasks (see Compile for all checks).
//
// A Ruleset and its Rules are immutable and safe for concurrent use. Matching
// and making are built for throughput: patterns are resolved at compile time,
// the capture groups are only located when some pattern uses them, and the
// strings of all the tasks made by one Make call share one allocation.
package rules

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/resc-go/resc/config"
)

// Ruleset is the compiled rules of one watcher.
type Ruleset struct {
	rules []*Rule
}

// Rules returns the rules, in file order.
func (rs *Ruleset) Rules() []*Rule { return slices.Clone(rs.rules) }

// Match returns the rules that match event, in file order, or nil when none
// does (without allocating).
func (rs *Ruleset) Match(event string) []Match {
	return rs.AppendMatches(nil, event)
}

// AppendMatches appends to dst the rules that match event, in file order,
// and returns the extended slice: Match without allocating a slice per
// event when dst has room.
func (rs *Ruleset) AppendMatches(dst []Match, event string) []Match {
	out := dst
	for _, r := range rs.rules {
		if r.needLoc {
			if loc := r.re.FindStringSubmatchIndex(event); loc != nil {
				out = append(out, Match{rule: r, event: event, loc: loc})
			}
		} else if r.re.MatchString(event) {
			out = append(out, Match{rule: r, event: event})
		}
	}
	return out
}

// Rule is one compiled rule.
type Rule struct {
	name     string
	re       *regexp.Regexp
	needLoc  bool    // some pattern uses a group: locate them when matching
	groups   []group // named groups, in regex order
	fetchers []fetcher
	makers   []maker
}

type group struct {
	name  string
	index int
}

type fetcher struct {
	url      pattern
	returns  string
	settings *config.FetchSettings // nil for the fetch client's own
}

type maker struct {
	task, queue, set pattern
	hasSet           bool // the make entry has a set pattern
	ns               int  // the fetcher whose variables it uses, or -1
}

// Name returns the rule's name ("<anonymous rule>" when it has none).
func (r *Rule) Name() string { return r.name }

// HasFetch reports whether the rule has fetchers, so that its tasks are made
// from the results of HTTP fetches.
func (r *Rule) HasFetch() bool { return len(r.fetchers) > 0 }

// Match is a rule that matched an event.
type Match struct {
	rule  *Rule
	event string
	loc   []int // submatch indices; nil when no pattern uses a group
}

// Var is a variable and its value.
type Var struct {
	Name, Value string
}

// Task is a task to push.
type Task struct {
	// Task is the task, pushed to Queue.
	Task string
	// Queue is the list the task is pushed to.
	Queue string
	// Set is the sorted set deduplicating the task, when HasSet.
	Set string
	// HasSet is true when the make entry has a set. Its pattern may still
	// expand to "" (an empty variable): the watcher refuses such a task.
	HasSet bool
	// Rule is the name of the rule that made the task.
	Rule string
}

// Rule returns the rule that matched.
func (m *Match) Rule() *Rule { return m.rule }

// Vars returns the variables of the match, for explanations and logs:
// input_task first, then the named groups of on in regex order. Fetch
// variables are not included.
func (m *Match) Vars() []Var {
	r := m.rule
	x := expansion{event: m.event, loc: m.loc}
	if x.loc == nil && len(r.groups) > 0 {
		x.loc = r.re.FindStringSubmatchIndex(m.event)
	}
	vars := make([]Var, 0, 1+len(r.groups))
	vars = append(vars, Var{Name: InputTask, Value: m.event})
	for _, g := range r.groups {
		vars = append(vars, Var{Name: g.name, Value: x.value(&segment{kind: segGroup, group: g.index})})
	}
	return vars
}

// FetchRequest is a fetch a match needs.
type FetchRequest struct {
	// URL is the URL to GET, with the values of its variables escaped (see
	// the package doc).
	URL string
	// Settings are the fetch settings of the fetcher (config.Fetcher's),
	// shared and not to be modified; nil when the configuration gave none
	// (a config.Fetcher built by hand), for the fetch client's own.
	Settings *config.FetchSettings
}

// FetchRequests returns the fetch of each fetcher of the rule, in order;
// nil when the rule has none. The error says that the values of a path
// segment made of variables only are "." or "..", which would move the URL
// up or stay in its path: the event cannot be fetched, ever.
func (m *Match) FetchRequests() ([]FetchRequest, error) {
	r := m.rule
	if len(r.fetchers) == 0 {
		return nil, nil
	}
	x := expansion{event: m.event, loc: m.loc}
	reqs := make([]FetchRequest, len(r.fetchers))
	for i := range r.fetchers {
		f := &r.fetchers[i]
		u, dots := x.expandURL(&f.url)
		if dots != nil {
			var names, value strings.Builder
			for i := range dots {
				names.WriteString("${" + dots[i].text + "}")
				value.WriteString(x.value(&dots[i]))
			}
			return nil, fmt.Errorf("fetch URL of %q: %s is %q, a path segment that would change the path",
				f.returns, names.String(), value.String())
		}
		reqs[i] = FetchRequest{URL: u, Settings: f.settings}
	}
	return reqs, nil
}

// Make appends to dst the tasks the match makes, and returns the extended
// slice. For a rule with fetchers, results[i] holds the results of fetcher i
// (as returned by the fetch: property names without the returns namespace);
// a missing results[i] counts as no result. For a rule without fetchers,
// results is ignored (pass nil).
//
// The tasks are in resc's order: for each fetcher, for each of its results,
// the make entries in order; without fetchers, the make entries in order.
func (m *Match) Make(results [][]map[string]string, dst []Task) []Task {
	// Two passes over the same tasks: the first sizes the one buffer that
	// holds the text of all of them, the second writes it.
	k := making{x: expansion{event: m.event, loc: m.loc}, sizing: true}
	m.each(results, &k)
	k.dst = slices.Grow(dst, k.tasks)
	k.b.Grow(k.size)
	k.sizing = false
	m.each(results, &k)
	return k.dst
}

// each calls k.make for each task of the match, in order.
func (m *Match) each(results [][]map[string]string, k *making) {
	r := m.rule
	if len(r.fetchers) == 0 {
		for i := range r.makers {
			k.make(&r.makers[i], r.name)
		}
		return
	}
	for f := range r.fetchers {
		if f >= len(results) {
			break
		}
		for _, res := range results[f] {
			k.x.result = res
			for i := range r.makers {
				if mk := &r.makers[i]; mk.ns < 0 || mk.ns == f {
					k.make(mk, r.name)
				}
			}
		}
	}
	k.x.result = nil
}

// making is the state of a Make call.
type making struct {
	x      expansion
	sizing bool // first pass: count the tasks and size the buffer
	tasks  int
	size   int
	b      strings.Builder
	dst    []Task
}

func (k *making) make(mk *maker, rule string) {
	if k.sizing {
		k.tasks++
		for _, p := range [...]*pattern{&mk.task, &mk.queue, &mk.set} {
			if !p.direct() {
				k.size += k.x.size(p)
			}
		}
		return
	}
	k.dst = append(k.dst, Task{
		Task:   k.field(&mk.task),
		Queue:  k.field(&mk.queue),
		Set:    k.field(&mk.set),
		HasSet: mk.hasSet,
		Rule:   rule,
	})
}

// field expands p: a single segment is used as it is, the others are written
// into the shared buffer.
func (k *making) field(p *pattern) string {
	if p.direct() {
		return k.x.expand(p)
	}
	start := k.b.Len()
	k.x.write(&k.b, p)
	// A strings.Builder only appends: the bytes behind this string are
	// never written again (and the buffer, sized exactly, never moves).
	return k.b.String()[start:]
}
