package inspect

import (
	"context"

	"github.com/resc-go/resc/membership"
)

// Activity is what the live replicas counted since each started, as they
// publish it every membership.CountersInterval: the console computes rates
// from two Activities.
type Activity struct {
	// Replicas are the counters of each registered replica that published
	// some, by id.
	Replicas map[string]*membership.Counters
	// Problems are the counters that could not be read.
	Problems []string
}

// Activity reads the published counters of the registered replicas in one
// pipeline (after the registry's).
func (in *Inspector) Activity(ctx context.Context) (*Activity, error) {
	prefix := in.cfg.KeyPrefix
	a := &Activity{Replicas: map[string]*membership.Counters{}, Problems: []string{}}
	replicas, err := membership.Replicas(ctx, in.rdb, prefix)
	if err != nil {
		if !Answered(err) {
			return nil, err
		}
		a.Problems = append(a.Problems, "replica registry: "+err.Error())
		return a, nil
	}
	ids := make([]string, 0, len(replicas))
	for _, r := range replicas {
		if r.Alive {
			ids = append(ids, r.ID)
		}
	}
	cs, errs, err := membership.ReadCounters(ctx, in.rdb, prefix, ids)
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		if errs[i] != nil {
			a.Problems = append(a.Problems, errs[i].Error())
		}
		if cs[i] != nil {
			a.Replicas[id] = cs[i]
		}
	}
	return a, nil
}
