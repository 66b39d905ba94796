package console

import (
	"sync"
	"time"

	"github.com/resc-go/resc/inspect"
	"github.com/resc-go/resc/internal/counts"
	"github.com/resc-go/resc/membership"
)

// sample is one reading of the deployment.
type sample struct {
	at       time.Time
	status   *inspect.Status
	activity *inspect.Activity
	err      error // the reading failed: status and activity are nil
}

// history keeps the last samples, oldest first.
type history struct {
	mu      sync.Mutex
	max     int
	samples []sample
}

func (h *history) add(s sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples = append(h.samples, s)
	if n := len(h.samples) - h.max; n > 0 {
		h.samples = append(h.samples[:0], h.samples[n:]...)
	}
}

// snapshot returns a copy of the samples, oldest first.
func (h *history) snapshot() []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sample(nil), h.samples...)
}

// counter picks one figure out of a replica's watcher counters.
type counter func(counts.Watcher) int64

var (
	cTaken   counter = func(w counts.Watcher) int64 { return w.Taken }
	cHandled counter = func(w counts.Watcher) int64 { return w.Handled }
	cDead    counter = func(w counts.Watcher) int64 { return w.DeadLettered }
	cRetried counter = func(w counts.Watcher) int64 { return w.Retried }
)

// ruleCounter and queueCounter pick a rule's matches, a task queue's
// pushed or deduplicated tasks.
func ruleCounter(index int) counter {
	return func(w counts.Watcher) int64 {
		for _, r := range w.Rules {
			if r.Index == index {
				return r.Matches
			}
		}
		return 0
	}
}

func queueCounter(queue string, deduplicated bool) counter {
	return func(w counts.Watcher) int64 {
		for _, q := range w.Queues {
			if q.Queue == queue {
				if deduplicated {
					return q.Deduplicated
				}
				return q.Pushed
			}
		}
		return 0
	}
}

func watcherOf(c *membership.Counters, input string) (counts.Watcher, bool) {
	if c == nil {
		return counts.Watcher{}, false
	}
	for _, w := range c.Watchers {
		if w.InputQueue == input {
			return w, true
		}
	}
	return counts.Watcher{}, false
}

// rate is the sum over the replicas of what f counted per second between
// two activities, each replica over the times of its own publications. A
// replica absent from either, or not published again, adds nothing; one
// whose count went down restarted (same id) and counts from zero.
func rate(from, to *inspect.Activity, input string, f counter) float64 {
	if from == nil || to == nil {
		return 0
	}
	var sum float64
	for id, c := range to.Replicas {
		p := from.Replicas[id]
		if p == nil {
			continue
		}
		dt := c.Time.Sub(p.Time).Seconds()
		w1, ok1 := watcherOf(c, input)
		w0, ok0 := watcherOf(p, input)
		if dt <= 0 || !ok1 || !ok0 {
			continue
		}
		d := f(w1) - f(w0)
		if d < 0 {
			d = f(w1)
		}
		sum += float64(d) / dt
	}
	return sum
}

// total is the sum over the replicas of what f counted since each started.
func total(a *inspect.Activity, input string, f counter) int64 {
	if a == nil {
		return 0
	}
	var sum int64
	for _, c := range a.Replicas {
		if w, ok := watcherOf(c, input); ok {
			sum += f(w)
		}
	}
	return sum
}

// windowRate is what f counted per second over the last span of the
// readings, summed over the replicas of the latest one, each from its
// earliest reading within span (a replica that published its first
// counters meanwhile counts from then).
func windowRate(samples []sample, span time.Duration, input string, f counter, only string) float64 {
	var last *sample
	for i := len(samples) - 1; i >= 0; i-- {
		if samples[i].activity != nil {
			last = &samples[i]
			break
		}
	}
	if last == nil {
		return 0
	}
	var sum float64
	for id, c := range last.activity.Replicas {
		if only != "" && id != only {
			continue
		}
		for i := range samples {
			s := &samples[i]
			if s == last || s.activity == nil || last.at.Sub(s.at) > span || s.activity.Replicas[id] == nil {
				continue
			}
			one := func(c *membership.Counters) *inspect.Activity {
				return &inspect.Activity{Replicas: map[string]*membership.Counters{id: c}}
			}
			if input != "" {
				sum += rate(one(s.activity.Replicas[id]), one(c), input, f)
			} else {
				for _, w := range c.Watchers {
					sum += rate(one(s.activity.Replicas[id]), one(c), w.InputQueue, f)
				}
			}
			break
		}
	}
	return sum
}
