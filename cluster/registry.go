package cluster

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

var (
	//go:embed register.lua
	registerSrc    string
	registerScript = script.New(registerSrc)

	//go:embed heartbeat.lua
	heartbeatSrc    string
	heartbeatScript = script.New(heartbeatSrc)

	//go:embed deregister.lua
	deregisterSrc    string
	deregisterScript = script.New(deregisterSrc)
)

var (
	// ErrIDInUse is the outcome of registering an id that a live replica
	// holds. The error returned is an *IDInUseError, which wraps it.
	ErrIDInUse = errors.New("cluster: replica id is in use by a live replica")

	// ErrLeaseLost is wrapped by the cause of a cancelled lease
	// (context.Cause) when the heartbeat key was found gone or taken, or
	// when no renewal succeeded in time.
	ErrLeaseLost = errors.New("cluster: lease lost")

	// ErrStopped is the cause of the lease once Run has returned or
	// Deregister was called, and WaitLease's error then.
	ErrStopped = errors.New("cluster: membership stopped")

	// ErrNotRegistered is Deregister's outcome when the registration had
	// already expired or been taken over: nothing was removed.
	ErrNotRegistered = errors.New("cluster: replica is not registered (its heartbeat key expired or holds another registration)")

	// ErrWrongType is wrapped when a registry key holds a value of another
	// Redis type: nothing was written.
	ErrWrongType = errors.New("cluster: registry key has the wrong Redis type")
)

// IDInUseError is the error of Register (and of Run, when it cannot
// register again) when a live replica holds the id.
type IDInUseError struct {
	ID string
	// ExpiresIn is what the live registration's key had left to live,
	// unless renewed; negative when the key has no TTL.
	ExpiresIn time.Duration
}

func (e *IDInUseError) Error() string {
	if e.ExpiresIn < 0 {
		return fmt.Sprintf("cluster: replica id %q is in use by a live replica (its key has no TTL: remove it by hand if no replica holds the id)", e.ID)
	}
	return fmt.Sprintf("cluster: replica id %q is in use by a live replica (its heartbeat expires in %v unless renewed)", e.ID, e.ExpiresIn)
}

// Unwrap returns ErrIDInUse.
func (e *IDInUseError) Unwrap() error { return ErrIDInUse }

// Info describes a replica in the registry, as JSON in its info key.
type Info struct {
	ID         string    `json:"id"`
	Host       string    `json:"host"`
	PID        int       `json:"pid"`
	Version    string    `json:"version"`
	Started    time.Time `json:"started"`
	TakenLists []string  `json:"taken_lists"`
	// DeadAfter is the replica's Settings.DeadAfter, set by Register: the
	// age of its heartbeat is DeadAfter minus the TTL left on its key.
	DeadAfter time.Duration `json:"dead_after_ns"`
}

// RegisterOptions tune Register.
type RegisterOptions struct {
	// Dialect is the server's script dialect (script.Detect).
	Dialect script.Dialect

	// WaitForExpiry makes Register wait, when a live registration holds
	// the id, until that registration expires, for up to DeadAfter +
	// HeartbeatInterval; it then registers, or returns ErrIDInUse if the
	// holder is still renewing. For a replica restarted under the same id
	// after a crash, whose old key lives on for up to DeadAfter. False
	// (the default) refuses at once.
	WaitForExpiry bool

	// Now is the clock of the registration time kept in the registry.
	// Default time.Now.
	Now func() time.Time
}

// Membership is the registration of this replica. Create it with Register,
// keep it alive with Run, end it with Deregister.
type Membership struct {
	rdb      redis.Scripter
	s        Settings
	info     Info
	infoJSON string
	opts     RegisterOptions
	log      *slog.Logger
	outage   *backoff.Outage
	running  atomic.Bool

	mu sync.Mutex
	// token is the token of the current (or last) registration; pending
	// is one whose registration was sent but not confirmed.
	token, pending string
	lease          context.Context
	cancel         context.CancelCauseFunc
	timer          *time.Timer // ends the lease when no renewal succeeded in time
	renewed        time.Time   // when the last renewal that succeeded was sent
	changed        chan struct{}
	ended          bool
}

// Register registers this replica under info.ID and returns its
// membership with a live lease; it makes one attempt unless
// opts.WaitForExpiry is set. It fails with an *IDInUseError (ErrIDInUse)
// when a live replica holds the id, with ErrWrongType when a registry key
// has another type, and with the Redis error when Redis does not answer
// (a registration whose reply was lost then holds the id until it expires:
// register again with WaitForExpiry). ctx bounds the registration only:
// the lease does not derive from it.
//
// Call Run at once: the lease ends DeadAfter - 2*HeartbeatInterval after
// registering unless Run renews it.
//
// rdb should honour context deadlines (redis.Options.ContextTimeoutEnabled)
// so that a hung server does not hold a heartbeat past its interval; the
// lease ends on time regardless, by a timer of its own.
func Register(ctx context.Context, rdb redis.Scripter, s Settings, info Info, opts RegisterOptions, log *slog.Logger) (*Membership, error) {
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if info.ID == "" {
		return nil, errors.New("cluster: Info.ID (the replica id) is required")
	}
	if strings.Contains(info.ID, "/") {
		// "<taken_queue>/a/b" could be another watcher's taken list: the
		// leader does not take it for a/b's, and would never replay it.
		return nil, fmt.Errorf("cluster: replica id %q must not contain '/'", info.ID)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	info.DeadAfter = s.DeadAfter
	b, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("cluster: encoding replica info: %w", err)
	}
	log = log.With("replica", info.ID)
	m := &Membership{
		rdb:      rdb,
		s:        s,
		info:     info,
		infoJSON: string(b),
		opts:     opts,
		log:      log,
		outage:   backoff.NewOutage(log, "redis"),
		changed:  make(chan struct{}),
	}

	token := newToken()
	var deadline time.Time
	logged := false
	for {
		sent, err := m.registerOnce(ctx, token, "")
		if err == nil {
			m.startLease(ctx, token, sent)
			log.Info("registered", "dead_after", s.DeadAfter, "heartbeat", s.HeartbeatInterval, "taken_lists", len(info.TakenLists))
			return m, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var inUse *IDInUseError
		if !opts.WaitForExpiry || !errors.As(err, &inUse) || inUse.ExpiresIn < 0 {
			return nil, err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(s.DeadAfter + s.HeartbeatInterval)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, err
		}
		if !logged {
			log.Warn("replica id held by an earlier registration: waiting for it to expire", "expires_in", inUse.ExpiresIn)
			logged = true
		}
		// Retry just after the key's expiry; the deadline allows one last
		// attempt, in case the holder keeps renewing.
		if !backoff.Sleep(ctx, max(min(inUse.ExpiresIn+time.Millisecond, left), time.Millisecond)) {
			return nil, ctx.Err()
		}
	}
}

// newToken returns a random registration token.
func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b)
}

func (m *Membership) keys() []string {
	p, id := m.s.Prefix, m.info.ID
	return []string{keyspace.Replica(p, id), keyspace.ReplicaInfo(p, id), keyspace.Replicas(p), keyspace.Owners(p)}
}

// registerOnce runs register.lua once; it returns when the script was sent.
func (m *Membership) registerOnce(ctx context.Context, token, previous string) (time.Time, error) {
	keys := m.keys()
	args := make([]any, 0, 6+len(m.info.TakenLists))
	args = append(args, token, previous, ms(m.s.DeadAfter), m.info.ID, m.opts.Now().Unix(), m.infoJSON)
	for _, l := range m.info.TakenLists {
		args = append(args, l)
	}
	sent := time.Now()
	res, err := registerScript.Run(ctx, m.opts.Dialect, m.rdb, keys, args...).Int64Slice()
	if err != nil {
		return sent, fmt.Errorf("cluster: registering replica %q: %w", m.info.ID, err)
	}
	if len(res) == 2 {
		switch code, detail := res[0], res[1]; {
		case code == 1 || code == 2:
			return sent, nil
		case code == 0:
			in := time.Duration(detail) * time.Millisecond
			if detail < 0 {
				in = -1
			}
			return sent, &IDInUseError{ID: m.info.ID, ExpiresIn: in}
		case code == -1 && detail >= 1 && detail <= int64(len(keys)):
			return sent, fmt.Errorf("%w: %q", ErrWrongType, keys[detail-1])
		case code == -2:
			return sent, fmt.Errorf("cluster: register.lua refused its argument %d", detail)
		}
	}
	return sent, fmt.Errorf("cluster: register.lua: unexpected reply %v", res)
}

// startLease starts a new lease for the registration of token, sent at
// sent, and wakes up WaitLease.
func (m *Membership) startLease(ctx context.Context, token string, sent time.Time) {
	lease, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	leaseFor := m.s.leaseFor()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.timer != nil {
		m.timer.Stop()
	}
	m.token, m.pending = token, ""
	m.lease, m.cancel, m.renewed = lease, cancel, sent
	m.timer = time.AfterFunc(time.Until(sent.Add(leaseFor)), func() {
		cancel(fmt.Errorf("%w: no heartbeat renewal succeeded for %v (dead-after %v minus two heartbeat intervals)", ErrLeaseLost, leaseFor, m.s.DeadAfter))
	})
	close(m.changed)
	m.changed = make(chan struct{})
}

// ID is the replica id.
func (m *Membership) ID() string { return m.info.ID }

// Info is the replica's info as registered.
func (m *Membership) Info() Info { return m.info }

// Lease returns the current lease: a context that is live while this
// replica may take and handle events, and cancelled, with a cause
// (context.Cause) wrapping ErrLeaseLost or ErrStopped, as soon as it may
// not. Work must stop when it is done: the others may soon consider this
// replica dead and replay its taken lists. A lost lease is never live
// again: Run registers anew and starts a new lease (WaitLease).
func (m *Membership) Lease() context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease
}

// WaitLease returns a live lease, waiting while the membership is lost
// and Run registers again. It returns ErrStopped once Run has returned or
// Deregister was called, and ctx.Err() when ctx is done first. The usual
// loop of a caller:
//
//	for {
//		lease, err := m.WaitLease(ctx)
//		if err != nil {
//			return err
//		}
//		work(lease) // returns when lease is done (or ctx)
//	}
func (m *Membership) WaitLease(ctx context.Context) (context.Context, error) {
	for {
		m.mu.Lock()
		lease, changed, ended := m.lease, m.changed, m.ended
		m.mu.Unlock()
		if ended {
			return nil, ErrStopped
		}
		if lease.Err() == nil {
			return lease, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Run renews the registration every HeartbeatInterval until ctx is done,
// retrying sooner, with backoff, while Redis fails (an outage is logged
// once). When the lease is lost, Run registers again under a new token as
// soon as Redis answers, and starts a new lease.
//
// Run returns nil when ctx is done, after cancelling the lease (cause
// ErrStopped): cancel ctx only once the work under the lease has stopped
// and handed back what it held. It returns an error wrapping ErrIDInUse
// when another live replica took the id while this one could not renew
// (this process must then stop: it is the stale one), and ErrWrongType
// when a registry key was overwritten with another type. Run may be called
// once.
func (m *Membership) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("cluster: Membership.Run called more than once")
	}
	defer m.end()
	interval := m.s.HeartbeatInterval
	m.mu.Lock()
	next := m.renewed.Add(interval)
	m.mu.Unlock()
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	attempt := 0
	for {
		m.mu.Lock()
		lease, ended := m.lease, m.ended
		m.mu.Unlock()
		if ended { // Deregister was called
			return nil
		}
		if lease.Err() != nil {
			m.log.Warn("lease lost: work must stop; registering again", "cause", context.Cause(lease))
			sent, err := m.registerAgain(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				m.log.Error("cannot register again", "err", err)
				return err
			}
			m.log.Warn("registered again: work may resume on the new lease")
			attempt = 0
			t.Reset(time.Until(sent.Add(interval)))
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-lease.Done():
			continue
		case <-t.C:
		}
		sent, ok, err := m.heartbeat(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			m.outage.Fail(err)
			attempt++
			t.Reset(min(backoff.Delay(attempt), interval))
		case !ok:
			m.outage.OK()
			m.mu.Lock()
			m.cancel(fmt.Errorf("%w: the heartbeat key expired or holds another registration", ErrLeaseLost))
			m.mu.Unlock()
		default:
			m.outage.OK()
			attempt = 0
			m.renew(sent)
			t.Reset(time.Until(sent.Add(interval)))
		}
	}
}

// heartbeat runs heartbeat.lua once with the current token, waiting at most
// one interval for the reply.
func (m *Membership) heartbeat(ctx context.Context) (sent time.Time, renewed bool, err error) {
	m.mu.Lock()
	token := m.token
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, m.s.HeartbeatInterval)
	defer cancel()
	sent = time.Now()
	n, err := heartbeatScript.Run(ctx, m.opts.Dialect, m.rdb, m.keys()[:2], token, ms(m.s.DeadAfter)).Int64()
	if err != nil {
		return sent, false, fmt.Errorf("cluster: heartbeat: %w", err)
	}
	switch n {
	case 1:
		return sent, true, nil
	case 0:
		return sent, false, nil
	}
	return sent, false, fmt.Errorf("cluster: heartbeat.lua: unexpected reply %d", n)
}

// renew moves the lease's end to DeadAfter - 2*HeartbeatInterval after
// sent, unless it has already ended.
func (m *Membership) renew(sent time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.renewed = sent
	if m.lease.Err() == nil {
		m.timer.Reset(time.Until(sent.Add(m.s.leaseFor())))
	}
}

// registerAgain registers under a new token, retrying with backoff while
// Redis fails, and starts a new lease. The same new token is sent on every
// attempt, so that an attempt whose reply was lost is taken over by the
// next; the previous token is taken over too (a lease that ran out while
// its key was still alive).
func (m *Membership) registerAgain(ctx context.Context) (time.Time, error) {
	token := newToken()
	m.mu.Lock()
	previous := m.token
	m.pending = token
	m.mu.Unlock()
	attempt := 0
	for {
		actx, cancel := context.WithTimeout(ctx, m.s.HeartbeatInterval)
		sent, err := m.registerOnce(actx, token, previous)
		cancel()
		if err == nil {
			m.outage.OK()
			m.startLease(ctx, token, sent)
			return sent, nil
		}
		if ctx.Err() != nil {
			return sent, ctx.Err()
		}
		if errors.Is(err, ErrIDInUse) || errors.Is(err, ErrWrongType) {
			m.outage.OK()
			return sent, err
		}
		m.outage.Fail(err)
		attempt++
		if !backoff.Sleep(ctx, backoff.Delay(attempt)) {
			return sent, ctx.Err()
		}
	}
}

// end cancels the lease for good (cause ErrStopped).
func (m *Membership) end() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended {
		return
	}
	m.ended = true
	m.timer.Stop()
	m.cancel(ErrStopped)
	close(m.changed)
}

// Deregister ends the lease (cause ErrStopped), then removes the
// registration from Redis: the replica and info keys, its registry entry
// and the owner entries of its taken lists that still name it, only if
// the replica key still holds this membership's token. Call it after Run
// has returned, with a fresh context with a timeout (the one of Run is
// done by then). It returns ErrNotRegistered when the registration had
// already expired or been taken over: nothing was removed, and the leader
// cleans up as for a replica that died.
func (m *Membership) Deregister(ctx context.Context) error {
	m.end()
	m.mu.Lock()
	token, pending := m.token, m.pending
	m.mu.Unlock()
	keys := m.keys()
	args := make([]any, 0, 3+len(m.info.TakenLists))
	args = append(args, token, pending, m.info.ID)
	for _, l := range m.info.TakenLists {
		args = append(args, l)
	}
	n, err := deregisterScript.Run(ctx, m.opts.Dialect, m.rdb, keys, args...).Int64()
	if err != nil {
		return fmt.Errorf("cluster: deregistering replica %q: %w", m.info.ID, err)
	}
	switch {
	case n == 1:
		m.log.Info("deregistered")
		return nil
	case n == 0:
		return fmt.Errorf("%w: %q", ErrNotRegistered, m.info.ID)
	case n < 0 && -n <= int64(len(keys)):
		return fmt.Errorf("%w: %q", ErrWrongType, keys[-n-1])
	}
	return fmt.Errorf("cluster: deregister.lua: unexpected reply %d", n)
}

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
}

// Replicas lists the replicas of the registry under prefix ("" means
// config.DefaultKeyPrefix), by registration time: the live ones and the
// dead ones not yet cleaned up. The listing is a snapshot read in one
// pipeline, not atomically.
func Replicas(ctx context.Context, rdb Reader, prefix string) ([]ReplicaStatus, error) {
	prefix = orDefaultPrefix(prefix)
	zs, err := rdb.ZRangeWithScores(ctx, keyspace.Replicas(prefix), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: listing replicas: %w", err)
	}
	if len(zs) == 0 {
		return nil, nil
	}
	pipe := rdb.Pipeline()
	ttls := make([]*redis.DurationCmd, len(zs))
	infos := make([]*redis.StringCmd, len(zs))
	out := make([]ReplicaStatus, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		out[i].ID = id
		out[i].Registered = time.Unix(int64(z.Score), 0)
		ttls[i] = pipe.PTTL(ctx, keyspace.Replica(prefix, id))
		infos[i] = pipe.Get(ctx, keyspace.ReplicaInfo(prefix, id))
	}
	_, _ = pipe.Exec(ctx) // errors are read command by command
	for i := range out {
		r := &out[i]
		ttl, err := ttls[i].Result()
		if err != nil {
			return nil, fmt.Errorf("cluster: listing replicas: %w", err)
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
			r.InfoErr = fmt.Errorf("cluster: replica %q: reading its info: %w", r.ID, err)
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
	m, err := rdb.HGetAll(ctx, keyspace.Owners(orDefaultPrefix(prefix))).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: listing taken list owners: %w", err)
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
	return &Liveness{rdb: rdb, prefix: orDefaultPrefix(prefix)}
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
		return nil, fmt.Errorf("cluster: reading replica liveness: %w", err)
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
