package takenlist

import (
	"fmt"
	"slices"
	"testing"

	"github.com/resc-go/resc/internal/redistest"
)

func TestFind(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := t.Context()
	// A taken queue with every glob character, a second watcher whose input
	// queue looks like a taken list of the first, and keys that are not
	// taken lists.
	const tq = `a*b?c[d]e\f/taken`
	f := New([]Queues{
		{InputQueue: `a*b?c[d]e\f`, TakenQueue: tq},
		{InputQueue: tq + "/other"}, // its taken queue is the default, tq+"/other/taken"
	})
	for key, typ := range map[string]string{
		tq + "/r1":                "list",
		tq + "/r2":                "list",
		tq + "/other":             "list",   // another watcher's input queue
		tq + "/other/dead":        "list",   // and its dead-letter list
		tq + "/other/taken/r1":    "list",   // a taken list of the other watcher
		tq + "/set":               "string", // not a list
		tq + "/":                  "list",   // empty id
		`aXbYcdZe\f/taken/r3`:     "list",   // matches an unescaped pattern only
		`a*b?c[d]e\f/takenX/r4`:   "list",
		`a*b?c[d]e\f/taken/r5/x`:  "list", // id with '/'
		`a*b?c[d]e\f/taken/r6 ok`: "list",
	} {
		var err error
		if typ == "list" {
			err = rdb.RPush(ctx, key, "ev").Err()
		} else {
			err = rdb.Set(ctx, key, "v", 0).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.Find(ctx, rdb, tq)
	if err != nil {
		t.Fatal(err)
	}
	want := []List{{tq + "/r1", "r1"}, {tq + "/r2", "r2"}, {tq + "/r6 ok", "r6 ok"}}
	if !slices.Equal(got, want) {
		t.Errorf("Find = %q, want %q", got, want)
	}
	got, err = f.Find(ctx, rdb, tq+"/other/taken")
	if err != nil {
		t.Fatal(err)
	}
	if want := []List{{tq + "/other/taken/r1", "r1"}}; !slices.Equal(got, want) {
		t.Errorf("Find of the other watcher = %q, want %q", got, want)
	}
}

// TestFindManyKeys: a scan of more keys than one SCAN call returns finds
// each list once.
func TestFindManyKeys(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := t.Context()
	pipe := rdb.Pipeline()
	var want []List
	for i := range 3 * scanCount {
		id := fmt.Sprintf("r%05d", i)
		if i%3 == 0 {
			pipe.RPush(ctx, "in/taken/"+id, "ev")
			want = append(want, List{"in/taken/" + id, id})
		} else {
			pipe.Set(ctx, "noise/"+id, "v", 0)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := New([]Queues{{InputQueue: "in"}}).Find(ctx, rdb, "in/taken")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Find found %d lists, want %d", len(got), len(want))
	}
}
