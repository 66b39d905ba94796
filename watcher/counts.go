package watcher

import (
	"maps"
	"slices"
)

// Counts are a snapshot of what a watcher counted since it started: the
// figures its replica publishes for the operators' console (package
// replica), the same as its metrics.
type Counts struct {
	Taken, Handled, DeadLettered, Retried, NotOwned, HandedBack int64
	// Matches are the events each rule matched, in the order of the
	// ruleset; nil when the watcher has no MeterProvider.
	Matches []int64
	// Queues are the tasks pushed and deduplicated per task queue (past
	// 1000 queues, the others are counted under "_other"); nil without a
	// MeterProvider.
	Queues map[string]QueueCounts
}

// QueueCounts are the tasks of one task queue.
type QueueCounts struct {
	Pushed, Deduplicated int64
}

// Counts reads the watcher's counters; safe to call while it runs.
func (w *Watcher) Counts() Counts {
	s := &w.stats
	c := Counts{
		Taken: s.Taken.Load(), Handled: s.Committed.Load(), DeadLettered: s.DeadLettered.Load(),
		Retried: s.Retried.Load(), NotOwned: s.NotOwned.Load(), HandedBack: s.HandedBack.Load(),
	}
	m := w.metrics
	if m == nil {
		return c
	}
	c.Matches = make([]int64, len(m.matches))
	for i := range m.matches {
		c.Matches[i] = m.matches[i].Load()
	}
	c.Queues = map[string]QueueCounts{}
	read := func(q string, qc *queueCount) {
		if n, d := qc.pushed.Load(), qc.deduped.Load(); n+d > 0 {
			c.Queues[q] = QueueCounts{Pushed: n, Deduplicated: d}
		}
	}
	m.queues.Range(func(k, v any) bool { read(k.(string), v.(*queueCount)); return true })
	read("_other", m.other)
	return c
}

// Add returns the sum of c and o: the counts of a watcher's successive
// runs (a fenced watcher is started again with counters from zero).
func (c Counts) Add(o Counts) Counts {
	s := Counts{
		Taken: c.Taken + o.Taken, Handled: c.Handled + o.Handled, DeadLettered: c.DeadLettered + o.DeadLettered,
		Retried: c.Retried + o.Retried, NotOwned: c.NotOwned + o.NotOwned, HandedBack: c.HandedBack + o.HandedBack,
	}
	if c.Matches != nil || o.Matches != nil {
		s.Matches = make([]int64, max(len(c.Matches), len(o.Matches)))
		for i := range s.Matches {
			s.Matches[i] = at(c.Matches, i) + at(o.Matches, i)
		}
	}
	if c.Queues != nil || o.Queues != nil {
		s.Queues = maps.Clone(c.Queues)
		if s.Queues == nil {
			s.Queues = map[string]QueueCounts{}
		}
		for _, q := range slices.Sorted(maps.Keys(o.Queues)) {
			a, b := s.Queues[q], o.Queues[q]
			s.Queues[q] = QueueCounts{Pushed: a.Pushed + b.Pushed, Deduplicated: a.Deduplicated + b.Deduplicated}
		}
	}
	return s
}

func at(xs []int64, i int) int64 {
	if i < len(xs) {
		return xs[i]
	}
	return 0
}
