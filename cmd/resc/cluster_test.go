package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resc-go/resc/internal/redistest"
)

// TestKilledReplicaRecovered (chaos, first scenario): two replicas; the one
// holding an event (its fetch under way) is killed with SIGKILL; the other
// replays it after dead-after plus a leader scan and produces its task
// exactly once. Default cluster settings: dead-after 5 s, scan 1 s.
func TestKilledReplicaRecovered(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	api := newHeldAPI(t)
	cfg := procConfig(t, srv.URL(), api.URL)
	procs := map[string]*proc{
		"a": startResc(t, nil, "run", "--replica-id", "a", "--http-addr", "off", cfg),
		"b": startResc(t, nil, "run", "--replica-id", "b", "--http-addr", "off", cfg),
	}
	for _, p := range procs {
		p.waitLog(10*time.Second, "resc-go started")
	}
	if err := rdb.LPush(ctx, "in", "prod/7").Err(); err != nil {
		t.Fatal(err)
	}
	api.waitEntered(procs["a"], 10*time.Second)
	holder, survivor := "", ""
	for id := range procs {
		if n, _ := rdb.LLen(ctx, "in/taken/"+id).Result(); n == 1 {
			holder = id
		} else {
			survivor = id
		}
	}
	if holder == "" || survivor == "" {
		t.Fatalf("no single holder of the event: a=%q b=%q", list(t, rdb, "in/taken/a"), list(t, rdb, "in/taken/b"))
	}
	if err := procs[holder].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-procs[holder].done
	killed := time.Now()
	api.Release() // the survivor's fetch answers at once

	p := procs[survivor]
	p.eventually(15*time.Second, "the killed replica's event handled by the survivor", listIs(t, rdb, "made/todo", "made/7/widget"))
	t.Logf("recovered %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	assertList(t, rdb, "in/taken/"+holder)
	assertList(t, rdb, "in/taken/"+survivor)
	if !strings.Contains(p.stderr.String(), "leader") {
		p.fatalf("the survivor never led")
	}
	p.stop(10 * time.Second)
	if got := list(t, rdb, "made/todo"); !slices.Equal(got, []string{"made/7/widget"}) {
		t.Errorf("made/todo = %q, want the task exactly once", got)
	}
}

// TestSecondReplicaSameIDRefused: a second live replica with an id already
// in use is refused with a clear error.
func TestSecondReplicaSameIDRefused(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := procConfig(t, srv.URL(), "http://127.0.0.1:1")
	first := startResc(t, nil, "run", "--replica-id", "same", "--http-addr", "off", cfg)
	first.waitLog(10*time.Second, "resc-go started")
	second := startResc(t, nil, "run", "--replica-id", "same", "--http-addr", "off", cfg)
	if code := second.wait(20 * time.Second); code != 1 {
		second.fatalf("second replica with the same id: exit code %d, want 1", code)
	}
	if !strings.Contains(second.stderr.String(), "in use") {
		second.fatalf("no clear error")
	}
	first.stop(10 * time.Second)
}
