package membership

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"

	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/keyspace"
)

// ErrLeadershipLost is wrapped by the cause of a leadership context
// cancelled because the lock could not be kept: an extend failed or was
// refused, or the lock's validity ran out first.
var ErrLeadershipLost = errors.New("membership: leadership lost")

// errLeadReturned is the cause of a leadership context whose callback
// returned.
var errLeadReturned = errors.New("membership: the leader callback returned")

// Elector takes part in the election of one leader among the replicas,
// through a redsync mutex on "<prefix>leader". Create it with NewElector.
type Elector struct {
	id      string
	s       Settings
	log     *slog.Logger
	outage  *backoff.Outage
	mutex   *redsync.Mutex
	running atomic.Bool
	leading atomic.Bool
}

// NewElector returns an elector for replica id, locking through rdb. rdb
// should honour context deadlines (redis.Options.ContextTimeoutEnabled) so
// that an extend on a hung server fails in time; leadership ends when the
// lock's validity runs out regardless, by a timer of its own.
func NewElector(rdb redis.UniversalClient, id string, o Options) (*Elector, error) {
	s := o.Settings.WithDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errors.New("membership: the elector's replica id is required")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("replica", id)
	rs := redsync.New(goredis.NewPool(rdb))
	mutex := rs.NewMutex(keyspace.Leader(keyspace.SharedPrefix(rdb, s.Prefix)),
		redsync.WithExpiry(s.LeaderTTL),
		// One attempt per turn: Run paces the attempts itself.
		redsync.WithTries(1),
		// An attempt may take up to a quarter of the TTL (redsync's default
		// is 5%, 20 ms for the test TTL); the lock's validity is counted
		// from the attempt's start anyway.
		redsync.WithTimeoutFactor(0.25),
		redsync.WithGenValueFunc(func() (string, error) { return lockValue(id), nil }),
	)
	e := &Elector{
		id:     id,
		s:      s,
		log:    log,
		outage: backoff.NewOutage(log, "redis"),
		mutex:  mutex,
	}
	if o.MeterProvider != nil {
		if err := e.registerMetrics(o.MeterProvider); err != nil {
			log.Warn("metrics: resc.leader", "err", err)
		}
	}
	return e, nil
}

// registerMetrics reports resc.leader through mp, for the life of the
// process.
func (e *Elector) registerMetrics(mp metric.MeterProvider) error {
	m := mp.Meter("github.com/resc-go/resc/membership")
	leader, err := m.Int64ObservableGauge("resc.leader", metric.WithDescription("1 while this replica is the leader, else 0."))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		v := int64(0)
		if e.IsLeader() {
			v = 1
		}
		o.ObserveInt64(leader, v)
		return nil
	}, leader)
	return err
}

// lockValue is the value of the lock when id holds it: the id, for Leader,
// and a random part, so that each acquisition is a lock of its own.
func lockValue(id string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // never fails (crypto/rand documents it)
	return id + "#" + base64.RawURLEncoding.EncodeToString(b)
}

// IsLeader reports whether this elector leads now: a leadership context is
// live. It turns false when that context is cancelled.
func (e *Elector) IsLeader() bool { return e.leading.Load() }

// Run tries to acquire the leader lock every HeartbeatInterval until ctx
// is done. Each time it acquires it, it calls lead with a leadership
// context and extends the lock every LeaderTTL/3 while lead runs.
//
// The leadership context is cancelled the moment an extend fails or is
// refused (its cause wraps ErrLeadershipLost), when the lock's validity
// runs out before an extend succeeds, when lead returns, or when ctx is
// done. lead must return promptly once it is: Run waits for it, then
// releases the lock with a fresh context bounded by LeaderTTL, so that
// another elector can lead at once, and tries to lead again one interval
// later. See the package doc for what leadership does not guarantee.
//
// Run returns nil when ctx is done; it may be called once.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("membership: Elector.Run called more than once")
	}
	wait := time.Duration(0)
	for backoff.Sleep(ctx, wait) {
		wait = e.s.HeartbeatInterval
		if e.acquire(ctx) {
			e.leadWhileHeld(ctx, lead)
		}
	}
	return nil
}

// acquire makes one attempt at the lock.
func (e *Elector) acquire(ctx context.Context) bool {
	err := e.mutex.TryLockContext(ctx)
	if err == nil {
		e.outage.OK()
		return true
	}
	var taken *redsync.ErrTaken
	switch {
	case ctx.Err() != nil:
	case errors.As(err, &taken), errors.Is(err, redsync.ErrFailed):
		// Held by another, or acquired too slowly to be valid (and
		// released): Redis answered.
		e.outage.OK()
	default:
		e.outage.Fail(err)
	}
	return false
}

// leadWhileHeld runs lead while the lock is held, then releases it.
func (e *Elector) leadWhileHeld(ctx context.Context, lead func(context.Context)) {
	lctx, cancel := context.WithCancelCause(ctx)
	e.leading.Store(true)
	lose := func(cause error) {
		e.leading.Store(false)
		cancel(cause)
	}
	// When ctx is done, lctx is cancelled by the parent: the flag follows.
	stopFlag := context.AfterFunc(lctx, func() { e.leading.Store(false) })
	defer stopFlag()
	defer lose(nil) // nil: the cause stays the first one
	e.log.Info("leading", "lock", e.mutex.Name(), "ttl", e.s.LeaderTTL)

	// The lock is valid until mutex.Until() (redsync counts from the start
	// of the call that set it, minus a drift allowance); should no extend
	// succeed by then, leadership ends without waiting for one to fail.
	validity := time.AfterFunc(time.Until(e.mutex.Until()), func() {
		lose(fmt.Errorf("%w: the lock's validity ran out before an extend succeeded", ErrLeadershipLost))
	})
	defer validity.Stop()

	var wg sync.WaitGroup
	wg.Go(func() {
		defer lose(errLeadReturned)
		lead(lctx)
	})

	period := e.s.LeaderTTL / 3
	t := time.NewTicker(period)
	defer t.Stop()
extend:
	for {
		select {
		case <-lctx.Done():
			break extend
		case <-t.C:
		}
		// An extend may wait, up to the lock's validity, behind a slow
		// script; one that fails on Redis (a timeout, a broken connection)
		// is tried again at the next tick, and the validity timer ends
		// leadership should none succeed in time. A lock found taken or
		// gone ends it at once.
		ectx, cancelExtend := context.WithTimeout(lctx, max(time.Until(e.mutex.Until()), period))
		ok, err := e.mutex.ExtendContext(ectx)
		cancelExtend()
		if lctx.Err() != nil {
			break
		}
		if !ok && transientExtend(err) {
			e.log.Debug("extending the leader lock failed; trying again", "err", err)
			continue
		}
		if err != nil || !ok {
			if err == nil {
				err = errors.New("refused")
			}
			lose(fmt.Errorf("%w: extending the lock: %w", ErrLeadershipLost, err))
			break
		}
		validity.Reset(time.Until(e.mutex.Until()))
	}
	wg.Wait()
	e.release(ctx, context.Cause(lctx))
}

// transientExtend reports whether an extend failed only on Redis errors
// (redsync.RedisError: a timeout, a connection), not because the lock was
// taken, gone, or extended too late.
func transientExtend(err error) bool {
	if err == nil || errors.Is(err, redsync.ErrExtendFailed) || errors.Is(err, redsync.ErrLockAlreadyExpired) {
		return false
	}
	var taken *redsync.ErrTaken
	var nodeTaken *redsync.ErrNodeTaken
	if errors.As(err, &taken) || errors.As(err, &nodeTaken) {
		return false
	}
	var re *redsync.RedisError
	return errors.As(err, &re)
}

// release releases the lock if this elector still holds it, with a fresh
// context: ctx may be done.
func (e *Elector) release(ctx context.Context, cause error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.s.LeaderTTL)
	defer cancel()
	ok, err := e.mutex.UnlockContext(rctx)
	var taken *redsync.ErrTaken
	switch {
	case ok:
		e.log.Info("leadership ended, lock released", "cause", cause)
	case err == nil, errors.Is(err, redsync.ErrLockAlreadyExpired), errors.As(err, &taken):
		e.log.Warn("leadership ended; the lock had already expired or been taken", "cause", cause)
	default:
		e.log.Warn("leadership ended; the lock could not be released: it expires within its TTL", "cause", cause, "err", err)
	}
}

// Getter is what Leader needs of a go-redis client.
type Getter interface {
	Get(ctx context.Context, key string) *redis.StringCmd
}

// Leader returns the id of the replica that holds the leader lock under
// prefix ("" means config.DefaultKeyPrefix), or "" when none does.
func Leader(ctx context.Context, rdb Getter, prefix string) (string, error) {
	v, err := rdb.Get(ctx, keyspace.Leader(keyspace.SharedPrefix(rdb, orDefaultPrefix(prefix)))).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("membership: reading the leader lock: %w", err)
	}
	if i := strings.LastIndexByte(v, '#'); i >= 0 {
		return v[:i], nil
	}
	return v, nil // a value set by hand or by an older version
}
