package watcher

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resc-go/resc/internal/counts"
	"github.com/resc-go/resc/rules"
)

// Metrics of a watcher (names as OpenTelemetry instruments; the Prometheus
// exporter writes resc_events_taken_total and so on). Counters are read
// from atomics when scraped, so the hot path pays no more than an atomic
// add; see docs/telemetry.md for the list.
const meterName = "github.com/resc-go/resc/watcher"

// maxQueueSeries bounds the task queues counted apart: queue names come
// from patterns and could be unbounded; past this many, tasks are counted
// under queue="_other".
const maxQueueSeries = 1000

// queueCount counts the tasks of one task queue.
type queueCount struct {
	attrs   metric.ObserveOption
	pushed  atomic.Int64
	deduped atomic.Int64
}

// watcherMetrics holds what the watcher counts beyond liveCounts. Nil when the
// watcher has no meter: every method is nil-safe.
type watcherMetrics struct {
	queues   sync.Map // task queue -> *queueCount
	nQueues  atomic.Int64
	other    *queueCount
	ruleIdx  map[*rules.Rule]int
	matches  []atomic.Int64 // per rule, in ruleIdx order
	ruleAttr []metric.ObserveOption
	commit   metric.Float64Histogram
	commitAt metric.RecordOption
}

func newWatcherMetrics(rs *rules.Ruleset, input string, commit metric.Float64Histogram) *watcherMetrics {
	all := rs.Rules()
	m := &watcherMetrics{
		ruleIdx:  make(map[*rules.Rule]int, len(all)),
		matches:  make([]atomic.Int64, len(all)),
		ruleAttr: make([]metric.ObserveOption, len(all)),
		other:    &queueCount{attrs: metric.WithAttributes(attribute.String("queue", "_other"))},
		commit:   commit,
		commitAt: metric.WithAttributeSet(attribute.NewSet(attribute.String("queue", input))),
	}
	for i, r := range all {
		m.ruleIdx[r] = i
		m.ruleAttr[i] = metric.WithAttributes(attribute.String("queue", input), attribute.String("rule", r.Name()),
			attribute.String("rule_index", strconv.Itoa(i)))
	}
	return m
}

// matched counts the rules that matched an event.
func (m *watcherMetrics) matched(ms []rules.Match) {
	if m == nil {
		return
	}
	for i := range ms {
		m.matches[m.ruleIdx[ms[i].Rule()]].Add(1)
	}
}

// tasks counts the tasks of a committed event per queue; pushed has one
// character per task, '1' pushed, '0' skipped by its set.
func (m *watcherMetrics) tasks(tasks []rules.Task, pushed string) {
	if m == nil {
		return
	}
	for i, t := range tasks {
		c := m.queue(t.Queue)
		if i < len(pushed) && pushed[i] == '1' {
			c.pushed.Add(1)
		} else {
			c.deduped.Add(1)
		}
	}
}

func (m *watcherMetrics) queue(q string) *queueCount {
	if c, ok := m.queues.Load(q); ok {
		return c.(*queueCount)
	}
	if m.nQueues.Load() >= maxQueueSeries {
		return m.other
	}
	c, loaded := m.queues.LoadOrStore(q, &queueCount{attrs: metric.WithAttributes(attribute.String("queue", q))})
	if !loaded {
		m.nQueues.Add(1)
	}
	return c.(*queueCount)
}

// queueCounts reads the tasks counted per queue, sorted by queue: those
// with none are left out.
func (m *watcherMetrics) queueCounts() []counts.Queue {
	qs := []counts.Queue{}
	read := func(q string, qc *queueCount) {
		if n, d := qc.pushed.Load(), qc.deduped.Load(); n+d > 0 {
			qs = append(qs, counts.Queue{Queue: q, Pushed: n, Deduplicated: d})
		}
	}
	m.queues.Range(func(k, v any) bool { read(k.(string), v.(*queueCount)); return true })
	read("_other", m.other)
	slices.SortFunc(qs, func(a, b counts.Queue) int { return cmp.Compare(a.Queue, b.Queue) })
	return qs
}

// commitDone records the duration of one commit round trip.
func (m *watcherMetrics) commitDone(ctx context.Context, d time.Duration) {
	if m == nil || m.commit == nil {
		return
	}
	m.commit.Record(ctx, d.Seconds(), m.commitAt)
}

// registerMetrics creates the watcher's instruments and registers the
// callback that reads its counters and list lengths when scraped. The
// returned function unregisters it (the watcher stopped).
func (w *Watcher) registerMetrics(mp metric.MeterProvider) (unregister func(), err error) {
	meter := mp.Meter(meterName)
	var errs []error
	counter := func(name, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	taken := counter("resc.events.taken", "Events taken from the input queue.")
	handled := counter("resc.events.handled", "Events committed: their tasks pushed.")
	dead := counter("resc.events.dead_lettered", "Events sent to the dead-letter list by this replica.")
	retried := counter("resc.events.retried", "Events scheduled again after their fetch failed.")
	notOwned := counter("resc.events.not_owned", "Commits refused: the event was replayed elsewhere (a zombie's commit).")
	handedBack := counter("resc.events.handed_back", "Events moved back to the input queue (start replay, shutdown).")
	pushed := counter("resc.tasks.pushed", "Tasks pushed to their queue.")
	deduped := counter("resc.tasks.deduplicated", "Tasks not pushed: already in their set.")
	matches := counter("resc.rule.matches", "Events a rule matched.")
	length, err := meter.Int64ObservableGauge("resc.queue.length", metric.WithDescription(
		"Length of the watcher's lists: input queue, this replica's taken list, dead-letter list, delay schedule."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	q := attribute.String("queue", w.cfg.InputQueue)
	at := metric.WithAttributes(q)
	lists := []struct {
		kind string
		key  string
		zset bool
	}{{"input", w.cfg.InputQueue, false}, {"taken", w.taken, false}, {"dead", w.dead, false}, {"delayed", w.sched, true}}
	listAttrs := make([]metric.ObserveOption, len(lists))
	for i, l := range lists {
		listAttrs[i] = metric.WithAttributes(q, attribute.String("list", l.kind))
	}
	reg, err := meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		s := &w.stats
		o.ObserveInt64(taken, s.Taken.Load(), at)
		o.ObserveInt64(handled, s.Committed.Load(), at)
		o.ObserveInt64(dead, s.DeadLettered.Load(), at)
		o.ObserveInt64(retried, s.Retried.Load(), at)
		o.ObserveInt64(notOwned, s.NotOwned.Load(), at)
		o.ObserveInt64(handedBack, s.HandedBack.Load(), at)
		m := w.metrics
		for i := range m.matches {
			o.ObserveInt64(matches, m.matches[i].Load(), m.ruleAttr[i])
		}
		observe := func(c *queueCount) {
			o.ObserveInt64(pushed, c.pushed.Load(), c.attrs)
			o.ObserveInt64(deduped, c.deduped.Load(), c.attrs)
		}
		m.queues.Range(func(_, v any) bool { observe(v.(*queueCount)); return true })
		if m.other.pushed.Load()+m.other.deduped.Load() > 0 {
			observe(m.other)
		}
		// Lengths: one pipeline, bounded; a Redis that does not answer
		// leaves them out of this scrape.
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		pipe := w.rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(lists))
		for i, l := range lists {
			if l.zset {
				cmds[i] = pipe.ZCard(ctx, l.key)
			} else {
				cmds[i] = pipe.LLen(ctx, l.key)
			}
		}
		_, _ = pipe.Exec(ctx)
		for i, c := range cmds {
			if n, err := c.Result(); err == nil {
				o.ObserveInt64(length, n, listAttrs[i])
			}
		}
		return nil
	}, taken, handled, dead, retried, notOwned, handedBack, pushed, deduped, matches, length)
	if err != nil {
		return nil, err
	}
	return func() { _ = reg.Unregister() }, nil
}
