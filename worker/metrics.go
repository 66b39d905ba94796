package worker

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/metric"
)

// registerMetrics reports the worker's Stats through mp as the counters
// resc.worker.<name> (docs/telemetry.md), for the life of the process.
func (w *Worker) registerMetrics(mp metric.MeterProvider) error {
	m := mp.Meter("github.com/resc-go/resc/worker")
	s := &w.stats
	counters := []struct {
		name, desc string
		v          *atomic.Int64
	}{
		{"resc.worker.taken", "Tasks this worker took.", &s.taken},
		{"resc.worker.completed", "Tasks completed: done event pushed.", &s.completed},
		{"resc.worker.retried", "Failed attempts put in the delay schedule for a retry.", &s.retried},
		{"resc.worker.dead_lettered", "Tasks sent to the dead-letter list <queue>/dead.", &s.deadLettered},
		{"resc.worker.fenced", "Completions or failures refused: the task had been replayed (the worker was presumed dead).", &s.fenced},
		{"resc.worker.handed_back", "Tasks given back to their queue at shutdown.", &s.handedBack},
		{"resc.worker.replayed", "Tasks of its own taken lists replayed when a lease started.", &s.replayed},
		{"resc.worker.panics", "Handler panics caught.", &s.panics},
	}
	obs := make([]metric.Observable, len(counters))
	insts := make([]metric.Int64ObservableCounter, len(counters))
	for i, c := range counters {
		inst, err := m.Int64ObservableCounter(c.name, metric.WithDescription(c.desc))
		if err != nil {
			return err
		}
		insts[i], obs[i] = inst, inst
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i, c := range counters {
			o.ObserveInt64(insts[i], c.v.Load())
		}
		return nil
	}, obs...)
	return err
}
