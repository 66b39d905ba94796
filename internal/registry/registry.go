package registry

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

	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/keyspace"
	"github.com/resc-go/resc/internal/script"
)

var (
	//go:embed register.lua
	registerSrc    string
	registerScript = script.New(registerSrc, script.TypeCheck)

	//go:embed heartbeat.lua
	heartbeatSrc    string
	heartbeatScript = script.New(heartbeatSrc, script.TypeCheck)

	//go:embed deregister.lua
	deregisterSrc    string
	deregisterScript = script.New(deregisterSrc, script.TypeCheck)
)

var (
	// ErrIDInUse is the outcome of registering an id that a live replica
	// holds. The error returned is an *IDInUseError, which wraps it.
	ErrIDInUse = errors.New("membership: replica id is in use by a live replica")

	// ErrLeaseLost is wrapped by the cause of a cancelled lease
	// (context.Cause) when the heartbeat key was found gone or taken, or
	// when no renewal succeeded in time.
	ErrLeaseLost = errors.New("membership: lease lost")

	// ErrStopped is the cause of the lease once Run has returned or
	// Deregister was called, and WaitLease's error then.
	ErrStopped = errors.New("membership: membership stopped")

	// ErrNotRegistered is Deregister's outcome when the registration had
	// already expired or been taken over: nothing was removed.
	ErrNotRegistered = errors.New("membership: replica is not registered (its heartbeat key expired or holds another registration)")

	// ErrWrongType is wrapped when a registry key holds a value of another
	// Redis type: nothing was written.
	ErrWrongType = errors.New("membership: registry key has the wrong Redis type")
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
		return fmt.Sprintf("membership: replica id %q is in use by a live replica (its key has no TTL: remove it by hand if no replica holds the id)", e.ID)
	}
	return fmt.Sprintf("membership: replica id %q is in use by a live replica (its heartbeat expires in %v unless renewed)", e.ID, e.ExpiresIn)
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
	// Kind is "worker" for a worker of package worker, "" for a replica.
	Kind string `json:"kind,omitempty"`
	// DeadAfter is the replica's Settings.DeadAfter, set by Register: the
	// age of its heartbeat is DeadAfter minus the TTL left on its key.
	DeadAfter time.Duration `json:"dead_after_ns"`
}

// Options configure a registration (Register) beside its Redis client.
type Options struct {
	// Settings are the timings and the key prefix; zero fields take
	// their defaults. Every replica and worker of a deployment uses the
	// same.
	Settings Settings

	// Dialect is the server's script dialect (script.Detect).
	Dialect script.Dialect

	// Logger; nil means slog.Default(). The replica id is added.
	Logger *slog.Logger

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
	opts     Options
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
func Register(ctx context.Context, rdb redis.Scripter, info Info, opts Options) (*Membership, error) {
	s := opts.Settings.WithDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if info.ID == "" {
		return nil, errors.New("membership: Info.ID (the replica id) is required")
	}
	if strings.Contains(info.ID, "/") {
		// "<taken_queue>/a/b" could be another watcher's taken list: the
		// leader does not take it for a/b's, and would never replay it.
		return nil, fmt.Errorf("membership: replica id %q must not contain '/'", info.ID)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	info.DeadAfter = s.DeadAfter
	b, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("membership: encoding replica info: %w", err)
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
	p, id := keyspace.SharedPrefix(m.rdb, m.s.Prefix), m.info.ID
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
		return sent, fmt.Errorf("membership: registering replica %q: %w", m.info.ID, err)
	}
	switch code := script.Code(res); {
	case code == 1:
		return sent, nil
	case code == 0 && len(res) == 2:
		in := time.Duration(res[1]) * time.Millisecond
		if res[1] < 0 {
			in = -1
		}
		return sent, &IDInUseError{ID: m.info.ID, ExpiresIn: in}
	case code >= 2 && code <= 5:
		return sent, &script.TypeError{Key: keys[code-2], Err: ErrWrongType}
	case code == 6 && len(res) == 2:
		return sent, fmt.Errorf("membership: register.lua refused its argument %d", res[1])
	}
	return sent, fmt.Errorf("membership: register.lua: unexpected reply %v", res)
}

// ID is the replica id.
func (m *Membership) ID() string { return m.info.ID }

// Info is the replica's info as registered.
func (m *Membership) Info() Info { return m.info }

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
	res, err := deregisterScript.Run(ctx, m.opts.Dialect, m.rdb, keys, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("membership: deregistering replica %q: %w", m.info.ID, err)
	}
	switch code := script.Code(res); {
	case code == 1:
		m.log.Info("deregistered")
		return nil
	case code == 0:
		return fmt.Errorf("%w: %q", ErrNotRegistered, m.info.ID)
	case code >= 2 && code <= 4:
		return &script.TypeError{Key: keys[code-1], Err: ErrWrongType}
	}
	return fmt.Errorf("membership: deregister.lua: unexpected reply %v", res)
}
