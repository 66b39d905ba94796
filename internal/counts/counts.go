// Package counts is the one shape of a watcher's counters: the snapshot a
// watcher returns (watcher.Watcher.Counts), the figures its replica
// publishes for the operators' console (membership.PublishCounters, as
// JSON) and those the console reads back (inspect.Activity). A snapshot is
// a value: reading it changes nothing in the watcher.
//
// It is a leaf, so that package watcher, which counts, and package
// membership, which publishes, share the type without importing each
// other.
package counts

import (
	"cmp"
	"slices"
)

// Watcher is what one watcher of one replica counted since it started.
// Counts only grow while the watcher runs. The JSON names are the
// published format; readers ignore the names they do not know, so a field
// may be added but never renamed.
type Watcher struct {
	// InputQueue names the watcher.
	InputQueue string `json:"input_queue"`
	// Taken are the events taken from the input queue.
	Taken int64 `json:"taken"`
	// Handled are the events committed: their tasks pushed.
	Handled int64 `json:"handled"`
	// DeadLettered are the events sent to the dead-letter list.
	DeadLettered int64 `json:"dead_lettered"`
	// Retried are the events scheduled again after a failed fetch.
	Retried int64 `json:"retried"`
	// NotOwned are the commits refused: the event was no longer in the
	// taken list (replayed elsewhere).
	NotOwned int64 `json:"not_owned"`
	// HandedBack are the events moved back to the input queue (start
	// replay and shutdown).
	HandedBack int64 `json:"handed_back"`
	// Pushed are the tasks pushed to their queue, Deduplicated those not
	// pushed because their set had them already.
	Pushed       int64 `json:"pushed"`
	Deduplicated int64 `json:"deduplicated"`
	// Rules are the events each rule matched, one per rule of the
	// watcher in the order of its ruleset (matches counted only by a
	// watcher with a MeterProvider, else 0).
	Rules []Rule `json:"rules"`
	// Queues are the tasks per task queue, by queue name (counted only by
	// a watcher with a MeterProvider, else empty; past 1000 queues the
	// others are counted under "_other").
	Queues []Queue `json:"queues"`
}

// Rule is how many events a rule matched; Index is its position in the
// watcher's rules, Name its name (empty when unnamed).
type Rule struct {
	Index   int    `json:"index"`
	Name    string `json:"name"`
	Matches int64  `json:"matches"`
}

// Queue are the tasks pushed to a task queue and those its set
// deduplicated.
type Queue struct {
	Queue        string `json:"queue"`
	Pushed       int64  `json:"pushed"`
	Deduplicated int64  `json:"deduplicated"`
}

// Add returns the sum of c and o, the counts of one watcher's successive
// runs (a fenced watcher is started again with counts from zero): rules
// are matched by index, queues by name (sorted). The input queue is c's,
// or o's when c has none.
func (c Watcher) Add(o Watcher) Watcher {
	s := Watcher{
		InputQueue: cmp.Or(c.InputQueue, o.InputQueue),
		Taken:      c.Taken + o.Taken, Handled: c.Handled + o.Handled, DeadLettered: c.DeadLettered + o.DeadLettered,
		Retried: c.Retried + o.Retried, NotOwned: c.NotOwned + o.NotOwned, HandedBack: c.HandedBack + o.HandedBack,
		Pushed: c.Pushed + o.Pushed, Deduplicated: c.Deduplicated + o.Deduplicated,
		Rules:  slices.Clone(c.Rules),
		Queues: slices.Clone(c.Queues),
	}
	for _, r := range o.Rules {
		if i := slices.IndexFunc(s.Rules, func(x Rule) bool { return x.Index == r.Index }); i >= 0 {
			s.Rules[i].Matches += r.Matches
			s.Rules[i].Name = cmp.Or(s.Rules[i].Name, r.Name)
		} else {
			s.Rules = append(s.Rules, r)
		}
	}
	slices.SortStableFunc(s.Rules, func(a, b Rule) int { return cmp.Compare(a.Index, b.Index) })
	at := make(map[string]int, len(s.Queues))
	for i, q := range s.Queues {
		at[q.Queue] = i
	}
	for _, q := range o.Queues {
		if i, ok := at[q.Queue]; ok {
			s.Queues[i].Pushed += q.Pushed
			s.Queues[i].Deduplicated += q.Deduplicated
		} else {
			s.Queues = append(s.Queues, q)
		}
	}
	slices.SortStableFunc(s.Queues, func(a, b Queue) int { return cmp.Compare(a.Queue, b.Queue) })
	if s.Rules == nil {
		s.Rules = []Rule{}
	}
	if s.Queues == nil {
		s.Queues = []Queue{}
	}
	return s
}
