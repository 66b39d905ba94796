package replica

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/resc-go/resc/cluster"
	"github.com/resc-go/resc/recovery"
)

// registerClusterMetrics reports leadership and the recovery's counters:
// resc.leader (1 while this replica leads) and resc.recovery.* (what this
// replica did while it led).
func registerClusterMetrics(mp metric.MeterProvider, e *cluster.Elector, rec *recovery.Recoverer) error {
	m := mp.Meter("github.com/resc-go/resc/replica")
	leader, err1 := m.Int64ObservableGauge("resc.leader", metric.WithDescription("1 while this replica is the leader, else 0."))
	counter := func(name, desc string) (metric.Int64ObservableCounter, error) {
		return m.Int64ObservableCounter(name, metric.WithDescription(desc))
	}
	replayed, err2 := counter("resc.recovery.replayed", "Events of dead replicas put back in their input queue by this replica as leader.")
	delayed, err3 := counter("resc.recovery.delayed", "Events of dead replicas put in the delay schedule (replayed before: growing delay).")
	dead, err4 := counter("resc.recovery.dead_lettered", "Events replayed more than max_replays, sent to the dead-letter list.")
	promoted, err5 := counter("resc.recovery.promoted", "Due events moved from a delay schedule (replays, fetch retries) to their input queue.")
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return err
	}
	s := rec.Stats()
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		v := int64(0)
		if e.IsLeader() {
			v = 1
		}
		o.ObserveInt64(leader, v)
		o.ObserveInt64(replayed, s.Replayed.Load())
		o.ObserveInt64(delayed, s.Delayed.Load())
		o.ObserveInt64(dead, s.DeadLettered.Load())
		o.ObserveInt64(promoted, s.Promoted.Load())
		return nil
	}, leader, replayed, delayed, dead, promoted)
	return err
}

var noopMeterProvider metric.MeterProvider = noop.NewMeterProvider()
