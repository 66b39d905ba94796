package console

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/resc-go/resc/inspect"
)

// rateSpan is the window of the current rates.
const rateSpan = 30 * time.Second

type overviewView struct {
	page
	Err       string
	Status    *inspect.Status
	SampledAt time.Time
	Replicas  []replicaView
	Watchers  []watcherView
	Problems  []string
	Leader    string
	Interval  int // ms between refreshes
}

type replicaView struct {
	inspect.Replica
	InFlight int64
	Rate     float64 // events handled per second
}

type watcherView struct {
	inspect.Watcher
	TakenRate, HandledRate, DeadRate, RetriedRate float64 // per second, over rateSpan
	HandledTotal                                  int64
	Charts                                        []chart
	Rules                                         []ruleView
	Queues                                        []queueView
	MoreQueues                                    bool // the last of Queues sums the others
}

// maxQueuesShown bounds the task queues listed per watcher (queue names
// come from patterns: there may be thousands).
const maxQueuesShown = 25

type ruleView struct {
	Index   int
	Name    string
	Matches int64
	Rate    float64
}

type queueView struct {
	Queue               string
	Pushed, Deduplicate int64
	Rate                float64
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	v := c.overviewOf(c.latest(r.Context()))
	v.page = c.page(r, "Overview", "overview")
	if r.URL.Query().Get("fragment") == "1" {
		c.render(w, http.StatusOK, "overview", "live", v)
		return
	}
	c.render(w, http.StatusOK, "overview", "layout", v)
}

// overviewOf builds the overview of the readings, the latest last.
func (c *Console) overviewOf(samples []sample) overviewView {
	v := overviewView{Interval: int(min(c.o.Interval, 2*time.Second).Milliseconds())}
	last := samples[len(samples)-1]
	v.SampledAt = last.at
	if last.err != nil {
		v.Err = last.err.Error()
		return v
	}
	st, act := last.status, last.activity
	v.Status = st
	v.Problems = slices.Concat(st.Problems, act.Problems)
	if st.Leader != nil {
		v.Leader = *st.Leader
	}
	wr := func(input string, f counter) float64 { return windowRate(samples, rateSpan, input, f, "") }
	for _, rs := range st.Replicas {
		rv := replicaView{Replica: rs, Rate: windowRate(samples, rateSpan, "", cHandled, rs.ID)}
		for _, tl := range rs.TakenLists {
			rv.InFlight += tl.Length
		}
		v.Replicas = append(v.Replicas, rv)
	}
	ok := okSamples(samples)
	span := time.Duration(0)
	if len(ok) > 1 {
		span = ok[len(ok)-1].at.Sub(ok[0].at)
	}
	for i, ws := range st.Watchers {
		in := ws.InputQueue
		wv := watcherView{
			Watcher:   ws,
			TakenRate: wr(in, cTaken), HandledRate: wr(in, cHandled),
			DeadRate: wr(in, cDead), RetriedRate: wr(in, cRetried),
			HandledTotal: total(act, in, cHandled),
		}
		wv.Charts = []chart{
			newChart("input queue", lengths(ok, i, func(w inspect.Watcher) *int64 { return w.Input }), span, formatCount),
			newChart("handled/s", rates(ok, in, cHandled), span, formatRate),
			newChart("taken", lengths(ok, i, func(w inspect.Watcher) *int64 { return &w.Taken }), span, formatCount),
			newChart("dead letters", lengths(ok, i, func(w inspect.Watcher) *int64 { return w.Dead }), span, formatCount),
		}
		if i < len(c.cfg.Watchers) {
			for _, rule := range c.cfg.Watchers[i].Rules {
				f := ruleCounter(rule.Index)
				wv.Rules = append(wv.Rules, ruleView{Index: rule.Index, Name: rule.Name,
					Matches: total(act, in, f), Rate: wr(in, f)})
			}
		}
		for _, q := range taskQueues(act, in) {
			wv.Queues = append(wv.Queues, queueView{Queue: q,
				Pushed: total(act, in, queueCounter(q, false)), Deduplicate: total(act, in, queueCounter(q, true)),
				Rate: wr(in, queueCounter(q, false))})
		}
		// The busiest first; past maxQueuesShown, the rest are summed.
		slices.SortStableFunc(wv.Queues, func(a, b queueView) int { return cmp.Compare(b.Pushed+b.Deduplicate, a.Pushed+a.Deduplicate) })
		if n := len(wv.Queues); n > maxQueuesShown {
			more := queueView{Queue: strconv.Itoa(n-maxQueuesShown) + " other queues"}
			for _, q := range wv.Queues[maxQueuesShown:] {
				more.Pushed += q.Pushed
				more.Deduplicate += q.Deduplicate
				more.Rate += q.Rate
			}
			wv.Queues = append(wv.Queues[:maxQueuesShown], more)
			wv.MoreQueues = true
		}
		v.Watchers = append(v.Watchers, wv)
	}
	return v
}

// okSamples are the readings that succeeded.
func okSamples(samples []sample) []sample {
	var ok []sample
	for _, s := range samples {
		if s.err == nil {
			ok = append(ok, s)
		}
	}
	return ok
}

// lengths is a length of watcher i in each reading (0 when unknown).
func lengths(samples []sample, i int, f func(inspect.Watcher) *int64) []float64 {
	out := make([]float64, 0, len(samples))
	for _, s := range samples {
		var v float64
		if i < len(s.status.Watchers) {
			if p := f(s.status.Watchers[i]); p != nil {
				v = float64(*p)
			}
		}
		out = append(out, v)
	}
	return out
}

// rates is a rate at each reading, since the one before; the first
// reading has none.
func rates(samples []sample, input string, f counter) []float64 {
	if len(samples) < 2 {
		return nil
	}
	out := make([]float64, 0, len(samples)-1)
	for i := 1; i < len(samples); i++ {
		out = append(out, rate(samples[i-1].activity, samples[i].activity, input, f))
	}
	return out
}

// taskQueues are the task queues the replicas pushed to for input, sorted.
func taskQueues(a *inspect.Activity, input string) []string {
	seen := map[string]bool{}
	for _, c := range a.Replicas {
		if w, ok := watcherOf(c, input); ok {
			for _, q := range w.Queues {
				seen[q.Queue] = true
			}
		}
	}
	qs := make([]string, 0, len(seen))
	for q := range seen {
		qs = append(qs, q)
	}
	slices.Sort(qs)
	return qs
}
