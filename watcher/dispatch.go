package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/rules"
)

// takenEvent is one event of a take on its way to dispatch.
type takenEvent struct {
	b *takeBatch // the take it is part of
	i int        // its index in b
	// entry is the event as the taken list holds it, with its crash replay
	// stamp, if any; event is without it.
	entry, event string
	trace        *eventTrace // nil when not traced
}

// fetchRun is where the events that need a fetch go, for one run: ready
// to the committer once fetched, after a slot of their host (slots),
// their goroutines counted by fetches.
type fetchRun struct {
	ready   chan<- []*item
	slots   *hostSlots
	fetches *sync.WaitGroup
}

// dispatch applies the rules to ev. When no matching rule fetches, the
// event joins ev.b.now, ready to commit; else a goroutine of fr sends it to
// the committer once fetched.
func (w *Watcher) dispatch(work context.Context, ev takenEvent, fr fetchRun) {
	b, i, entry, t := ev.b, ev.i, ev.entry, ev.trace
	seq := uint64(w.stats.Taken.Add(1))
	if len(ev.event) > 0 && ev.event[0] == 0 {
		if size, field, head, ok := keyspace.ParseSetAside(ev.event); ok {
			// Set aside by take.lua for its size: no rule reads it.
			it := &b.items[i]
			it.event, it.entry, it.seq, it.trace = head, entry, seq, t
			it.aside = &setAside{size: size, field: field}
			it.deadLetter(fmt.Sprintf("event of %d bytes, more than max_event_bytes (%d): set aside in hash %s, field %s",
				size, w.opts.MaxEventBytes, w.oversized, field))
			b.now = append(b.now, it)
			return
		}
	}
	b.matches = w.rules.AppendMatches(b.matches[:0], ev.event)
	matches := b.matches
	w.metrics.matched(matches)
	if w.log.Enabled(work, slog.LevelInfo) {
		w.log.Info("<- event", "event", short(ev.event), "matching_rules", len(matches))
	}
	needsFetch := false
	for j := range matches {
		needsFetch = needsFetch || matches[j].Rule().HasFetch()
	}
	if !needsFetch {
		it := &b.items[i]
		it.event, it.entry, it.seq, it.trace = ev.event, entry, seq, t
		start := len(b.tasks)
		for j := range matches {
			n := len(b.tasks)
			_, span := t.rule(matches[j].Rule())
			b.tasks = matches[j].Make(nil, b.tasks)
			endRule(span, len(b.tasks)-n, nil)
		}
		it.tasks = b.tasks[start:len(b.tasks):len(b.tasks)]
		b.now = append(b.now, it)
		return
	}
	matches = slices.Clone(matches) // b.matches is the next event's
	fr.fetches.Add(1)
	go func() {
		defer fr.fetches.Done()
		it := w.fetchAndMake(work, ev.event, t, matches, fr.slots)
		it.entry, it.seq, it.trace = entry, seq, t
		w.queued.Add(1)
		fr.ready <- []*item{it}
	}()
}

// fetchAndMake runs the fetches of ev's matching rules and makes its tasks.
// A failed fetch fails the whole event, so that no task of it is pushed
// twice when it is attempted again: a transient failure schedules it again,
// a permanent one (Options.Permanent) sends it to the dead-letter list.
func (w *Watcher) fetchAndMake(work context.Context, ev string, t *eventTrace, matches []rules.Match, fetchSlots *hostSlots) *item {
	it := &item{event: ev, fetched: true}
	for i := range matches {
		m := &matches[i]
		rctx, span := t.rule(m.Rule())
		if rctx == nil {
			rctx = work
		}
		n := len(it.tasks)
		reqs, err := m.FetchRequests()
		if err != nil {
			endRule(span, 0, err)
			w.log.Warn("fetch failed", "event", short(ev), "rule", m.Rule().Name(), "err", err)
			return &item{event: ev, fetched: true, outcome: outcomeDead, reason: "rule " + strconv.Quote(m.Rule().Name()) + ": " + err.Error()}
		}
		if len(reqs) == 0 {
			it.tasks = m.Make(nil, it.tasks)
			endRule(span, len(it.tasks)-n, nil)
			continue
		}
		if w.fetch == nil {
			err := errors.New("no fetcher configured")
			endRule(span, 0, err)
			return &item{event: ev, fetched: true, outcome: outcomeDead, reason: "rule " + strconv.Quote(m.Rule().Name()) + ": " + err.Error()}
		}
		results := make([][]map[string]string, len(reqs))
		for j, r := range reqs {
			release, err := fetchSlots.acquire(work, r.URL)
			var busy *errHostBusy
			switch {
			case errors.As(err, &busy):
				endRule(span, 0, err)
				return &item{event: ev, fetched: true, outcome: outcomeRetryBusy, reason: err.Error()}
			case err != nil:
				endRule(span, 0, err)
				return &item{event: ev, outcome: outcomeHandBack}
			}
			res, err := w.fetch.Fetch(rctx, r.URL, r.Settings)
			release()
			if err != nil {
				endRule(span, 0, err)
				if work.Err() != nil {
					return &item{event: ev, outcome: outcomeHandBack}
				}
				why := "rule " + strconv.Quote(m.Rule().Name()) + ": " + err.Error()
				if w.opts.Permanent != nil && w.opts.Permanent(err) {
					w.log.Warn("fetch failed for good", "event", short(ev), "rule", m.Rule().Name(), "err", err)
					return &item{event: ev, fetched: true, outcome: outcomeDead, reason: why}
				}
				return &item{event: ev, fetched: true, outcome: outcomeRetry, reason: why}
			}
			results[j] = res
		}
		it.tasks = m.Make(results, it.tasks)
		endRule(span, len(it.tasks)-n, nil)
	}
	return it
}

// startTraces starts the consumer spans of events, and stores the trace
// contexts of those taken without one, so that a replay or a retry of the
// event continues its trace. It stores them before the events are
// dispatched: a commit that deletes one must come after it. It never
// overwrites one.
func (w *Watcher) startTraces(ctx, work context.Context, events []string, infos []traceInfo) []*eventTrace {
	traces := make([]*eventTrace, len(events))
	var pipe redis.Pipeliner
	for i, ev := range events {
		t, store := w.startTrace(work, ev, infos[i])
		traces[i] = t
		if !store {
			continue
		}
		if pipe == nil {
			pipe = w.rdb.Pipeline()
		}
		pipe.SetNX(ctx, keyspace.TraceContext(w.opts.Prefix, w.cfg.InputQueue, ev), traceparent(t.ctx), w.opts.TraceContextTTL)
	}
	if pipe != nil {
		if _, err := pipe.Exec(ctx); err != nil && ctx.Err() == nil {
			w.log.Debug("storing trace contexts", "err", err)
		}
	}
	return traces
}
