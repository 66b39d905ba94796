package membership

// The retention of dead registry entries: the leader removes a replica or
// SDK worker that has been dead for the retention period, once its taken
// lists are empty (prune.lua).

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

var (
	//go:embed prune.lua
	pruneSrc    string
	pruneScript = script.New(pruneSrc, script.TypeCheck)
)

// PruneRedis is what a Pruner needs of a go-redis client.
type PruneRedis interface {
	redis.Scripter
	Reader
	HDel(ctx context.Context, key string, fields ...string) *redis.IntCmd
}

// Pruner removes the registry entries of replicas and workers that died
// (their heartbeat key expired without a Deregister): each is marked when
// the leader first finds it dead (keyspace.DeadSince) and removed once it
// has been dead for the retention, unless one of its taken lists still
// holds events, which the leader replays first (package recovery); it is
// removed at a later pass. An entry found alive again loses its mark.
//
// Run it while leading. Two leaders that briefly coexist may both prune:
// each step (prune.lua) is atomic and idempotent, and checks the entry is
// still dead and still registered before it removes anything. The time of
// death is the leader's observation, not the replica's last heartbeat: an
// entry is removed between the retention and the retention plus the time
// no replica led. A taken list that fills after the check (a zombie that
// takes after its death) is not lost: the leader finds taken lists by
// scanning, not through the registry.
type Pruner struct {
	rdb       PruneRedis
	s         Settings
	retention time.Duration
	dialect   script.Dialect
	log       *slog.Logger
	outage    *backoff.Outage
	now       func() time.Time
	wrongType bool // a registry key of the wrong type was logged
}

// PruneStats are the outcome of one pass.
type PruneStats struct {
	Marked  int // found dead for the first time
	Held    int // dead past the retention, kept: their taken lists hold events
	Removed int // removed from the registry
}

// NewPruner returns the pruner of the registry of o.Settings.Prefix, with
// retention; a retention of zero or less keeps dead entries (Prune does
// nothing). It uses o.Dialect, o.Logger and o.Now.
func NewPruner(rdb PruneRedis, retention time.Duration, o Options) *Pruner {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	log = log.With("component", "registry")
	return &Pruner{rdb: rdb, s: o.Settings.WithDefaults(), retention: retention, dialect: o.Dialect,
		log: log, outage: backoff.NewOutage(log, "redis"), now: now}
}

// Run prunes every interval, starting at once, until ctx (the leadership)
// is done; Redis failures are waited out (logged once per outage). It
// returns nil at once when the retention keeps dead entries.
func (p *Pruner) Run(ctx context.Context, interval time.Duration) error {
	if p.retention <= 0 {
		return nil
	}
	for ctx.Err() == nil {
		if _, err := p.Prune(ctx); err != nil && ctx.Err() == nil {
			if errors.Is(err, ErrWrongType) {
				if !p.wrongType {
					p.log.Error("cannot remove dead registry entries: a registry key has the wrong type", "err", err)
					p.wrongType = true
				}
			} else {
				p.outage.Fail(err)
			}
		} else {
			p.outage.OK()
			p.wrongType = false
		}
		if !backoff.Sleep(ctx, interval) {
			break
		}
	}
	return nil
}

// Prune makes one pass over the registry (see Pruner).
func (p *Pruner) Prune(ctx context.Context) (PruneStats, error) {
	var st PruneStats
	if p.retention <= 0 {
		return st, nil
	}
	prefix := keyspace.SharedPrefix(p.rdb, p.s.Prefix)
	zs, err := p.rdb.ZRangeWithScores(ctx, keyspace.Replicas(prefix), 0, -1).Result()
	if err != nil {
		return st, fmt.Errorf("membership: pruning the registry: %w", asWrongType(err, keyspace.Replicas(prefix)))
	}
	owners, err := p.rdb.HGetAll(ctx, keyspace.Owners(prefix)).Result()
	if err != nil {
		return st, fmt.Errorf("membership: pruning the registry: %w", asWrongType(err, keyspace.Owners(prefix)))
	}
	owned := map[string][]string{}
	for list, id := range owners {
		owned[id] = append(owned[id], list)
	}
	ids := make(map[string]bool, len(zs))
	for _, z := range zs {
		if id, ok := z.Member.(string); ok {
			ids[id] = true
		}
	}
	if err := p.dropStaleMarks(ctx, prefix, ids); err != nil {
		return st, err
	}
	// Whether each taken list is empty, in one pipeline; a list that
	// cannot be read counts as holding events.
	pipe := p.rdb.Pipeline()
	lens := map[string]*redis.IntCmd{}
	for id := range ids {
		for _, l := range owned[id] {
			lens[l] = pipe.LLen(ctx, l)
		}
	}
	if len(lens) > 0 {
		_, _ = pipe.Exec(ctx) // read command by command
	}
	now := p.now().UnixMilli()
	for id := range ids {
		held := "0"
		for _, l := range owned[id] {
			if n, err := lens[l].Result(); err != nil || n > 0 {
				held = "1"
			}
		}
		code, err := p.pruneOne(ctx, prefix, id, now, held, owned[id])
		if err != nil {
			return st, err
		}
		switch code {
		case 1:
			st.Marked++
		case 3:
			st.Held++
		case 4:
			st.Removed++
			p.log.Info("removed a dead entry from the registry", "replica", id, "retention", p.retention)
		}
	}
	return st, nil
}

// pruneOne runs prune.lua for id.
func (p *Pruner) pruneOne(ctx context.Context, prefix, id string, now int64, held string, lists []string) (int64, error) {
	keys := []string{keyspace.Replica(prefix, id), keyspace.ReplicaInfo(prefix, id), keyspace.Replicas(prefix),
		keyspace.Owners(prefix), keyspace.DeadSince(prefix)}
	args := make([]any, 0, 4+len(lists))
	args = append(args, id, now, p.retention.Milliseconds(), held)
	for _, l := range lists {
		args = append(args, l)
	}
	res, err := pruneScript.Run(ctx, p.dialect, p.rdb, keys, args...).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("membership: pruning replica %q: %w", id, err)
	}
	switch code := script.Code(res); {
	case code == 1 && len(res) == 2 && res[1] >= 0 && res[1] <= 4:
		return res[1], nil
	case code >= 2 && code <= 6:
		return 0, &script.TypeError{Key: keys[code-2], Err: ErrWrongType}
	}
	return 0, fmt.Errorf("membership: prune.lua: unexpected reply %v", res)
}

// dropStaleMarks removes the marks of ids that are no longer registered
// (deregistered after they were marked). Removing the mark of an id that
// registered meanwhile only restarts its count: harmless.
func (p *Pruner) dropStaleMarks(ctx context.Context, prefix string, ids map[string]bool) error {
	key := keyspace.DeadSince(prefix)
	marked, err := p.rdb.HGetAll(ctx, key).Result() // HGETALL: the documented ACL allows it, not HKEYS
	if err != nil {
		return fmt.Errorf("membership: reading the dead-since marks: %w", asWrongType(err, key))
	}
	var stale []string
	for id := range marked {
		if !ids[id] {
			stale = append(stale, id)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	if err := p.rdb.HDel(ctx, key, stale...).Err(); err != nil {
		return fmt.Errorf("membership: removing stale dead-since marks: %w", asWrongType(err, key))
	}
	return nil
}

// asWrongType is err as a *script.TypeError of key on a WRONGTYPE reply.
func asWrongType(err error, key string) error {
	if script.IsWrongTypeReply(err) {
		return &script.TypeError{Key: key, Err: ErrWrongType}
	}
	return err
}
