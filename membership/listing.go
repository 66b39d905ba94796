package membership

// Reading the registry: the replicas, the owners of the taken lists and
// their liveness, for package inspect and the recovery's leader.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/keyspace"
)

// Reader is what the listing functions need of a go-redis client.
type Reader interface {
	HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd
	ZRangeWithScores(ctx context.Context, key string, start, stop int64) *redis.ZSliceCmd
	Pipeline() redis.Pipeliner
}

// ReplicaStatus is a registered replica as Replicas sees it.
type ReplicaStatus struct {
	ID string
	// Registered is when it last registered.
	Registered time.Time
	// Alive reports whether its heartbeat key exists.
	Alive bool
	// TTL is what its heartbeat key has left to live unless renewed: 0
	// when dead, negative when the key has no TTL (set by hand).
	TTL time.Duration
	// HeartbeatAge is how long ago its heartbeat was last renewed, as
	// Info.DeadAfter minus TTL (Redis' view: no clock is compared); 0 when
	// unknown (dead, or no info).
	HeartbeatAge time.Duration
	// Info is its registered info; zero when the info key has expired.
	Info Info
	// InfoErr is why the info key could not be decoded; nil otherwise.
	InfoErr error
	// DeadSince is when the leader first found it dead (Pruner), by the
	// leader's clock; zero when it is alive or not found dead yet, or
	// when dead entries are kept (retention zero).
	DeadSince time.Time
}

// Replicas lists the replicas of the registry under prefix ("" means
// config.DefaultKeyPrefix), by registration time: the live ones and the
// dead ones not yet cleaned up. The listing is a snapshot read in one
// pipeline, not atomically.
func Replicas(ctx context.Context, rdb Reader, prefix string) ([]ReplicaStatus, error) {
	prefix = keyspace.SharedPrefix(rdb, orDefaultPrefix(prefix))
	zs, err := rdb.ZRangeWithScores(ctx, keyspace.Replicas(prefix), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("membership: listing replicas: %w", err)
	}
	if len(zs) == 0 {
		return nil, nil
	}
	pipe := rdb.Pipeline()
	ttls := make([]*redis.DurationCmd, len(zs))
	infos := make([]*redis.StringCmd, len(zs))
	marks := make([]*redis.StringCmd, len(zs))
	out := make([]ReplicaStatus, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		out[i].ID = id
		out[i].Registered = time.Unix(int64(z.Score), 0)
		ttls[i] = pipe.PTTL(ctx, keyspace.Replica(prefix, id))
		infos[i] = pipe.Get(ctx, keyspace.ReplicaInfo(prefix, id))
		marks[i] = pipe.HGet(ctx, keyspace.DeadSince(prefix), id)
	}
	_, _ = pipe.Exec(ctx) // errors are read command by command
	for i := range out {
		r := &out[i]
		ttl, err := ttls[i].Result()
		if err != nil {
			return nil, fmt.Errorf("membership: listing replicas: %w", err)
		}
		since, err := marks[i].Int64()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, fmt.Errorf("membership: listing replicas: reading when %q was found dead: %w", r.ID, asWrongType(err, keyspace.DeadSince(prefix)))
		case ttl == -2:
			r.DeadSince = time.UnixMilli(since)
		}
		switch ttl {
		case -2: // no key: dead
		case -1:
			r.Alive, r.TTL = true, -1
		default:
			r.Alive, r.TTL = true, ttl
		}
		b, err := infos[i].Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err == nil {
			err = json.Unmarshal(b, &r.Info)
		}
		if err != nil {
			r.InfoErr = fmt.Errorf("membership: replica %q: reading its info: %w", r.ID, err)
			continue
		}
		if r.Alive && r.TTL >= 0 && r.Info.DeadAfter > 0 {
			r.HeartbeatAge = max(r.Info.DeadAfter-r.TTL, 0)
		}
	}
	return out, nil
}

// Owners returns the owner of each registered taken list under prefix (""
// means config.DefaultKeyPrefix): taken list -> replica id. An owner may
// be dead (Replicas).
func Owners(ctx context.Context, rdb Reader, prefix string) (map[string]string, error) {
	m, err := rdb.HGetAll(ctx, keyspace.Owners(keyspace.SharedPrefix(rdb, orDefaultPrefix(prefix)))).Result()
	if err != nil {
		return nil, fmt.Errorf("membership: listing taken list owners: %w", err)
	}
	return m, nil
}

// Liveness tells live replicas from dead ones by their heartbeat keys
// (the recovery's leader asks it which taken lists are orphans). Create it
// with NewLiveness.
type Liveness struct {
	rdb    Pipeliner
	prefix string
}

// Pipeliner is what Liveness needs of a go-redis client.
type Pipeliner interface {
	Pipeline() redis.Pipeliner
}

// NewLiveness returns the liveness of the replicas registered under prefix
// ("" means config.DefaultKeyPrefix).
func NewLiveness(rdb Pipeliner, prefix string) *Liveness {
	return &Liveness{rdb: rdb, prefix: keyspace.SharedPrefix(rdb, orDefaultPrefix(prefix))}
}

// Alive reports, for each id, whether that replica is alive: whether its
// heartbeat key exists, in one pipeline. An id that never registered, or
// whose registration expired or was removed, is not alive. The answer may
// be stale by the time it is used: a dead replica can register again at
// any moment, which is why what the leader does with it must be fenced.
func (l *Liveness) Alive(ctx context.Context, ids []string) ([]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Exists(ctx, keyspace.Replica(l.prefix, id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("membership: reading replica liveness: %w", err)
	}
	alive := make([]bool, len(ids))
	for i, c := range cmds {
		alive[i] = c.Val() == 1
	}
	return alive, nil
}

func orDefaultPrefix(p string) string {
	if p == "" {
		return config.DefaultKeyPrefix
	}
	return p
}
