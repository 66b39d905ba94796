package counts

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestAdd(t *testing.T) {
	a := Watcher{
		InputQueue: "in", Taken: 1, Handled: 2, DeadLettered: 3, Retried: 4, NotOwned: 5, HandedBack: 6, Pushed: 7, Deduplicated: 8,
		Rules:  []Rule{{Index: 0, Name: "a", Matches: 1}, {Index: 1, Name: "b", Matches: 2}},
		Queues: []Queue{{Queue: "q1", Pushed: 1, Deduplicated: 1}, {Queue: "q3", Pushed: 3}},
	}
	b := Watcher{
		Taken: 10, Handled: 20, DeadLettered: 30, Retried: 40, NotOwned: 50, HandedBack: 60, Pushed: 70, Deduplicated: 80,
		Rules:  []Rule{{Index: 1, Name: "b", Matches: 20}, {Index: 2, Name: "c", Matches: 30}},
		Queues: []Queue{{Queue: "q2", Pushed: 2}, {Queue: "q1", Pushed: 10, Deduplicated: 10}},
	}
	want := Watcher{
		InputQueue: "in", Taken: 11, Handled: 22, DeadLettered: 33, Retried: 44, NotOwned: 55, HandedBack: 66, Pushed: 77, Deduplicated: 88,
		Rules:  []Rule{{Index: 0, Name: "a", Matches: 1}, {Index: 1, Name: "b", Matches: 22}, {Index: 2, Name: "c", Matches: 30}},
		Queues: []Queue{{Queue: "q1", Pushed: 11, Deduplicated: 11}, {Queue: "q2", Pushed: 2}, {Queue: "q3", Pushed: 3}},
	}
	if got := a.Add(b); !reflect.DeepEqual(got, want) {
		t.Errorf("a.Add(b) =\n%+v\nwant\n%+v", got, want)
	}
	if a.Rules[1].Matches != 2 || a.Queues[0].Pushed != 1 {
		t.Errorf("Add changed its receiver: %+v", a)
	}
	if got := (Watcher{}).Add(Watcher{}); got.Rules == nil || got.Queues == nil {
		t.Errorf("zero sum has nil lists (published as null): %+v", got)
	}
}

// TestWireFormat: the JSON names are those replicas published before the
// type was shared, so that readers of either version read the other's.
func TestWireFormat(t *testing.T) {
	old := `{"input_queue":"in","taken":1,"handled":2,"dead_lettered":3,"retried":4,"not_owned":5,"handed_back":6,` +
		`"rules":[{"index":0,"name":"r","matches":7}],"queues":[{"queue":"q","pushed":8,"deduplicated":9}]}`
	var w Watcher
	if err := json.Unmarshal([]byte(old), &w); err != nil {
		t.Fatal(err)
	}
	want := Watcher{InputQueue: "in", Taken: 1, Handled: 2, DeadLettered: 3, Retried: 4, NotOwned: 5, HandedBack: 6,
		Rules: []Rule{{Name: "r", Matches: 7}}, Queues: []Queue{{Queue: "q", Pushed: 8, Deduplicated: 9}}}
	if !reflect.DeepEqual(w, want) {
		t.Errorf("the old format read as %+v, want %+v", w, want)
	}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"input_queue", "taken", "handled", "dead_lettered", "retried", "not_owned", "handed_back", "rules", "queues"} {
		if _, ok := back[k]; !ok {
			t.Errorf("the published JSON lacks %q, which older readers read: %s", k, b)
		}
	}
}
