package membership

// A replica's counters, published for the operators' console: each
// replica writes its own key every CountersInterval; package inspect sums
// them into rates.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/counts"
	"github.com/resc-go/resc/internal/keyspace"
)

// CountersInterval is how often a replica publishes its counters, and
// CountersTTL how long they outlive the last publication: the key of a
// replica that stopped expires on its own.
const (
	CountersInterval = 2 * time.Second
	CountersTTL      = time.Minute
)

// Counters are what one replica counted since it started, per watcher,
// in the one shape of a watcher's counts (package counts): what
// watcher.Watcher.Counts returns is published as it is.
type Counters struct {
	// Time is when the counters were read.
	Time     time.Time        `json:"time"`
	Watchers []counts.Watcher `json:"watchers"`
}

// PublishCounters writes the counters of replica id under prefix ("":
// the default prefix), to live CountersTTL.
func PublishCounters(ctx context.Context, rdb redis.StringCmdable, prefix, id string, c Counters) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("membership: encoding counters: %w", err)
	}
	if err := rdb.Set(ctx, keyspace.ReplicaCounters(keyspace.SharedPrefix(rdb, orDefaultPrefix(prefix)), id), b, CountersTTL).Err(); err != nil {
		return fmt.Errorf("membership: publishing counters: %w", err)
	}
	return nil
}

// ReadCounters reads the published counters of the replicas ids, in one
// pipeline: nil for a replica without counters (not published yet, or
// expired). A key that does not decode is an error of its own in errs,
// at its index; the others are still read.
func ReadCounters(ctx context.Context, rdb Pipeliner, prefix string, ids []string) (cs []*Counters, errs []error, err error) {
	prefix = keyspace.SharedPrefix(rdb, orDefaultPrefix(prefix))
	cs, errs = make([]*Counters, len(ids)), make([]error, len(ids))
	if len(ids) == 0 {
		return cs, errs, nil
	}
	pipe := rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, keyspace.ReplicaCounters(prefix, id))
	}
	_, _ = pipe.Exec(ctx) // errors are read command by command
	for i, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			var re redis.Error
			if !errors.As(err, &re) {
				return nil, nil, fmt.Errorf("membership: reading counters: %w", err)
			}
			errs[i] = fmt.Errorf("counters of replica %q: %w", ids[i], err)
			continue
		}
		var ct Counters
		if err := json.Unmarshal([]byte(v), &ct); err != nil {
			errs[i] = fmt.Errorf("counters of replica %q do not decode: %w", ids[i], err)
			continue
		}
		cs[i] = &ct
	}
	return cs, errs, nil
}
