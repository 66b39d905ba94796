package console

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/inspect"
)

// filter is a search of the dead letters: every part given must match,
// case-insensitively. Text is looked for in the event, the reason and the
// replica; Reason in the reason; Rule names the rule whose fetch failed
// (reasons start `rule "<name>": `).
type filter struct {
	Text, Reason, Rule string
}

func filterOf(v url.Values) filter {
	return filter{Text: strings.TrimSpace(v.Get("q")), Reason: strings.TrimSpace(v.Get("reason")), Rule: v.Get("rule")}
}

func (f filter) empty() bool { return f == filter{} }

func (f filter) match(r deadletter.Record) bool {
	var reason, replica string
	if r.Entry != nil {
		reason, replica = r.Entry.Reason, r.Entry.Replica
	}
	has := func(s, sub string) bool { return strings.Contains(strings.ToLower(s), strings.ToLower(sub)) }
	if f.Text != "" && !has(r.Event(), f.Text) && !has(reason, f.Text) && !has(replica, f.Text) {
		return false
	}
	if f.Reason != "" && !has(reason, f.Reason) {
		return false
	}
	if f.Rule != "" && !strings.Contains(reason, "rule "+strconv.Quote(f.Rule)+":") {
		return false
	}
	return true
}

// values are f's query parameters, with queue.
func (f filter) values(queue string) url.Values {
	v := url.Values{"queue": {queue}}
	for k, s := range map[string]string{"q": f.Text, "reason": f.Reason, "rule": f.Rule} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// entryID names a stored entry in forms: its hash, so that an action
// applies to the entry shown even when positions moved meanwhile.
func entryID(stored string) string {
	h := sha256.Sum256([]byte(stored))
	return hex.EncodeToString(h[:12])
}

type deadView struct {
	page
	Queue     string
	Filter    filter
	Rules     []string
	Page      *inspect.DeadPage
	Rows      []deadRow
	Offset    int64
	Newer     string // links to the pages around, "" when none
	Older     string
	First     int64 // rank of the first row shown, 1-based
	Last      int64
	Filtered  bool
	QueryBack string // the current list's query, for the actions
}

type deadRow struct {
	deadletter.Record
	ID   string
	Link string
}

// queueOf returns the watcher's input queue the request names, or the
// only one; "" after answering the error.
func (c *Console) queueOf(w http.ResponseWriter, r *http.Request, q string) string {
	if q == "" && len(c.cfg.Watchers) == 1 {
		return c.cfg.Watchers[0].InputQueue
	}
	if err := c.in.DeadQueue(r.Context(), q); err != nil {
		c.message(w, r, http.StatusNotFound, "No such watcher", fmt.Sprintf("No watcher of this configuration has the input queue %q, and no worker announced it as its task queue.", q))
		return ""
	}
	return q
}

func (c *Console) dead(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	queue := c.queueOf(w, r, v.Get("queue"))
	if queue == "" {
		return
	}
	f := filterOf(v)
	offset, _ := strconv.ParseInt(v.Get("offset"), 10, 64)
	q := inspect.DeadQuery{Offset: max(offset, 0), Limit: pageSize}
	if !f.empty() {
		q.Where = f.match
	}
	p, err := c.in.DeadPage(r.Context(), queue, q)
	if err != nil {
		c.readError(w, r, err)
		return
	}
	dv := deadView{page: c.page(r, "Dead letters of "+queue, "dead"), Queue: queue, Filter: f, Page: p,
		Offset: q.Offset, Filtered: !f.empty(), QueryBack: f.values(queue).Encode()}
	dv.CurrentQueue = queue
	for _, wc := range c.cfg.Watchers {
		if wc.InputQueue == queue {
			for _, rule := range wc.Rules {
				if rule.Name != "" {
					dv.Rules = append(dv.Rules, rule.Name)
				}
			}
		}
	}
	for _, rec := range p.Records {
		id := entryID(rec.Stored)
		link := url.Values{"queue": {queue}, "pos": {strconv.FormatInt(rec.Position, 10)}, "id": {id}}
		dv.Rows = append(dv.Rows, deadRow{Record: rec, ID: id, Link: "/ui/dead/entry?" + link.Encode()})
	}
	at := func(off int64) string {
		qv := f.values(queue)
		if off > 0 {
			qv.Set("offset", strconv.FormatInt(off, 10))
		}
		return "/ui/dead?" + qv.Encode()
	}
	if q.Offset > 0 {
		dv.Newer = at(max(q.Offset-pageSize, 0))
	}
	if q.Offset+int64(len(p.Records)) < p.Matched {
		dv.Older = at(q.Offset + pageSize)
	}
	if len(p.Records) > 0 {
		dv.First, dv.Last = q.Offset+1, q.Offset+int64(len(p.Records))
	}
	c.render(w, http.StatusOK, "dead", "layout", dv)
}

// readError answers a failed read: Redis answered (a key of the wrong
// type) or did not.
func (c *Console) readError(w http.ResponseWriter, r *http.Request, err error) {
	if inspect.Answered(err) || errors.Is(err, deadletter.ErrDeadType) {
		c.message(w, r, http.StatusConflict, "Cannot read this list", err.Error())
		return
	}
	c.message(w, r, http.StatusBadGateway, "Redis did not answer", err.Error())
}

type entryView struct {
	page
	Queue  string
	Record deadletter.Record
	ID     string
	Trace  string // link to the trace, "" when none
	Moved  bool   // found elsewhere than at the position asked for
}

// entry shows one entry, found at its position when it is still there,
// else by its id among the newest inspect.MaxSearched.
func (c *Console) entry(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	queue := c.queueOf(w, r, v.Get("queue"))
	if queue == "" {
		return
	}
	id := v.Get("id")
	pos, _ := strconv.ParseInt(v.Get("pos"), 10, 64)
	rec, moved, err := c.find(r, queue, pos, id)
	if err != nil {
		c.readError(w, r, err)
		return
	}
	if rec == nil {
		c.message(w, r, http.StatusNotFound, "No such entry",
			"This dead letter is no longer in "+queue+"/dead: it was requeued or dropped meanwhile.")
		return
	}
	ev := entryView{page: c.page(r, "Dead letter #"+strconv.FormatInt(rec.Position, 10), "dead"), Queue: queue, Record: *rec, ID: entryID(rec.Stored), Moved: moved}
	ev.CurrentQueue = queue
	if c.o.JaegerURL != "" && rec.Entry != nil && rec.Entry.TraceID != "" {
		ev.Trace = c.o.JaegerURL + "/trace/" + url.PathEscape(rec.Entry.TraceID)
	}
	c.render(w, http.StatusOK, "entry", "layout", ev)
}

func (c *Console) find(r *http.Request, queue string, pos int64, id string) (*deadletter.Record, bool, error) {
	ctx := r.Context()
	head, err := c.in.DeadPage(ctx, queue, inspect.DeadQuery{Limit: 1})
	if err != nil {
		return nil, false, err
	}
	if pos >= 1 && pos <= head.Length {
		p, err := c.in.DeadPage(ctx, queue, inspect.DeadQuery{Offset: head.Length - pos, Limit: 1})
		if err != nil {
			return nil, false, err
		}
		if len(p.Records) == 1 && (id == "" || entryID(p.Records[0].Stored) == id) {
			return &p.Records[0], false, nil
		}
	}
	if id == "" {
		return nil, false, nil
	}
	p, err := c.in.DeadPage(ctx, queue, inspect.DeadQuery{Limit: 1, Where: func(rec deadletter.Record) bool { return entryID(rec.Stored) == id }})
	if err != nil || len(p.Records) == 0 {
		return nil, false, err
	}
	return &p.Records[0], true, nil
}
