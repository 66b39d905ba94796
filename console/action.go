package console

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/inspect"
)

// confirmShown is how many entries the confirmation of a bulk action
// lists.
const confirmShown = 20

type confirmView struct {
	page
	Queue, Action, Scope string
	IDs                  []string
	Filter               filter
	Count                int
	Shown                []deadletter.Record
	Back                 string
}

// action requeues or drops dead letters: the ones selected (by id), or
// every one the filter matches (all of them without a filter). A bulk
// action (several entries, or all matching) first shows what it will do
// and waits for a confirmation.
func (c *Console) action(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.allowed(w, r); !ok {
		return
	}
	queue := c.queueOf(w, r, r.PostFormValue("queue"))
	if queue == "" {
		return
	}
	do, scope := r.PostFormValue("do"), r.PostFormValue("scope")
	if op := r.PostFormValue("op"); op != "" { // the list's buttons: "<do>:<scope>"
		do, scope, _ = strings.Cut(op, ":")
	}
	var act inspect.Action
	switch do {
	case "requeue":
		act = inspect.Requeue
	case "drop":
		act = inspect.Drop
	default:
		c.message(w, r, http.StatusBadRequest, "Bad request", "Unknown action: use requeue or drop.")
		return
	}
	ids := r.PostForm["id"]
	f := filterOf(r.PostForm)
	var where func() func(deadletter.Record) bool
	switch scope {
	case "selected":
		if len(ids) == 0 {
			flash(w, "Nothing selected: tick the entries first.")
			http.Redirect(w, r, "/ui/dead?"+f.values(queue).Encode(), http.StatusSeeOther)
			return
		}
		where = func() func(deadletter.Record) bool { return byIDs(ids) }
	case "matching":
		where = func() func(deadletter.Record) bool { return f.match }
	default:
		c.message(w, r, http.StatusBadRequest, "Bad request", "Unknown scope: use selected or matching.")
		return
	}
	ctx := r.Context()
	recs, err := c.in.Select(ctx, queue, inspect.Selection{Where: where()})
	if err != nil {
		c.readError(w, r, err)
		return
	}
	back := "/ui/dead?" + f.values(queue).Encode()
	if (scope == "matching" || len(ids) > 1) && r.PostFormValue("confirm") != "yes" {
		v := confirmView{page: c.page(r, "Confirm: "+act.String(), "dead"), Queue: queue, Action: act.String(),
			Scope: scope, IDs: ids, Filter: f, Count: len(recs), Shown: recs[:min(len(recs), confirmShown)], Back: back}
		v.CurrentQueue = queue
		c.render(w, http.StatusOK, "confirm", "layout", v)
		return
	}
	counts, err := c.in.Apply(ctx, act, queue, recs, inspect.ApplyOptions{}, nil)
	msg := resultText(act, counts, len(recs))
	if err != nil {
		msg += fmt.Sprintf("; then stopped: %v (the other entries are untouched)", err)
	}
	c.log.Warn("console: "+act.String(), "queue", queue, "done", counts.Done, "skipped", counts.Skipped, "remote", r.RemoteAddr)
	flash(w, msg)
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// byIDs accepts the entries of ids, each as many times as it is given
// (identical entries have the same id).
func byIDs(ids []string) func(deadletter.Record) bool {
	want := map[string]int{}
	for _, id := range ids {
		want[id]++
	}
	return func(r deadletter.Record) bool {
		id := entryID(r.Stored)
		if want[id] > 0 {
			want[id]--
			return true
		}
		return false
	}
}

func resultText(a inspect.Action, c inspect.Counts, chosen int) string {
	verb := "Requeued"
	if a == inspect.Drop {
		verb = "Dropped"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d %s", verb, c.Done, plural(c.Done, "entry", "entries"))
	if c.Skipped > 0 {
		fmt.Fprintf(&b, ", skipped %d (gone meanwhile, or not a dead-letter entry: `resc dead requeue --raw` requeues those)", c.Skipped)
	}
	if chosen == 0 {
		b.WriteString(": none matched any more")
	}
	return b.String() + "."
}
