package watcher

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/rules"
)

// BenchmarkCommitScript measures one commit.lua call per event, one round
// trip each (the floor of an unbatched design).
func BenchmarkCommitScript(b *testing.B) {
	h := newHarness(b, nil, nil, nil)
	h.w.log = slog.New(slog.DiscardHandler)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev := "acq/p/" + strconv.Itoa(i)
		h.rdb.LPush(ctx, h.w.TakenList(), ev)
		it := item{event: ev, tasks: []rules.Task{{Task: "trt/p/" + strconv.Itoa(i), Queue: "trt/p/todo", Set: "trt/p/set", HasSet: true}}}
		if _, err := h.commitOne(ctx, &it); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitBatch measures commitBatch: one commit.lua call for 128
// events. ns/op is per event: compare with BenchmarkCommitScript. The events
// and their items are all made before the clock starts (stopping the clock
// per batch costs more than a batch).
func BenchmarkCommitBatch(b *testing.B) {
	h := newHarness(b, nil, nil, nil)
	h.w.log = slog.New(slog.DiscardHandler) // per-event Info lines are not the hot path's
	ctx := context.Background()
	const batch = 128
	items := make([]*item, b.N)
	pipe := h.rdb.Pipeline()
	for i := range items {
		ev := "acq/p/" + strconv.Itoa(i)
		items[i] = &item{event: ev, tasks: []rules.Task{{Task: "trt/p/" + strconv.Itoa(i), Queue: "trt/p/todo", Set: "trt/p/set", HasSet: true}}}
		pipe.LPush(ctx, h.w.TakenList(), ev)
		if i%1000 == 999 || i == len(items)-1 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for start := 0; start < len(items); start += batch {
		if left := h.w.commitBatch(ctx, items[start:min(start+batch, len(items))]); len(left) > 0 {
			b.Fatalf("%d left over", len(left))
		}
	}
}

// BenchmarkWatcher measures the whole watcher, end to end on one replica:
// b.N events queued, then taken, matched, made and committed (resc's
// introductory rule with a set). Reports events/s.
func BenchmarkWatcher(b *testing.B) {
	h := newHarness(b, []config.Rule{acqRule}, nil, nil)
	h.w.log = slog.New(slog.DiscardHandler)
	ctx := context.Background()
	pipe := h.rdb.Pipeline()
	for i := range b.N {
		pipe.LPush(ctx, "in", "acq/p"+strconv.Itoa(i%100)+"/"+strconv.Itoa(i))
		if i%1000 == 999 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	h.start()
	for h.w.stats.Committed.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	h.stop()
}
