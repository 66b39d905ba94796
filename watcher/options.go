package watcher

import (
	"context"
	"log/slog"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/script"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Options configure a Watcher beyond its configuration entry.
type Options struct {
	// Replica is this replica's id; required.
	Replica string
	// ListenerChannel is the configuration's listener_channel; "" publishes
	// nothing.
	ListenerChannel string
	// ListenerStream is the configuration's listener_stream: the listener
	// messages are also appended to this stream, in the commit script.
	// "" writes no stream.
	ListenerStream string
	// ListenerStreamMaxLen is the length ListenerStream is trimmed to,
	// approximately. Zero or negative: config.DefaultListenerStreamMaxLen.
	ListenerStreamMaxLen int64
	// Dialect is the server's script dialect (script.Detect).
	Dialect script.Dialect
	// CheckPermissions makes every commit check, before it writes, that
	// the ACL user may run its commands on its keys (redis.acl_check_cmd),
	// so that a missing permission fails the call with NOPERM instead of
	// half way through an event's writes. Set it for a restricted user
	// (redisconn.Restricted): it costs about 4% of the throughput.
	CheckPermissions bool
	// BlockTimeout is how long one BLMOVE waits for an event; it bounds how
	// long Run takes to notice its context is done. Zero, and anything
	// below 1 s: 1 s (go-redis sends whole seconds).
	BlockTimeout time.Duration
	// DrainTimeout is how long in-flight events may take to finish once
	// Run's context is done; what is left then is handed back to the input
	// queue. Zero or negative: DefaultDrainTimeout (30 s).
	DrainTimeout time.Duration
	// Now is the clock of set scores and dead-letter times. Nil: time.Now.
	Now func() time.Time
	// Logger. Nil: slog.Default().
	Logger *slog.Logger
	// Fence, when not nil, is the replica's lease (package membership): once it
	// is done the watcher stops at once, without draining (see Run). Nil
	// means no lease.
	Fence context.Context
	// MaxEventBytes is the configuration's max_event_bytes: a longer event
	// is set aside at take time and dead-lettered (take.lua). Zero or
	// negative: config.DefaultMaxEventBytes.
	MaxEventBytes int64
	// Prefix is the configuration's key prefix of internal keys (fetch
	// attempts, delay schedule, trace contexts). Zero:
	// config.DefaultKeyPrefix.
	Prefix string
	// Retry schedules the events whose fetch failed; its zero fields
	// take their defaults.
	Retry RetrySettings
	// Permanent tells fetch errors that retrying cannot fix (a 404, a body
	// that is not JSON): the event goes to the dead-letter list at once.
	// Nil: every fetch error is retried.
	Permanent func(error) bool
	// TracerProvider traces events (see trace.go); nil traces nothing.
	TracerProvider trace.TracerProvider
	// TraceParent makes an event's stored trace context the parent of its
	// consumer span; by default it is a link (OpenTelemetry messaging
	// conventions).
	TraceParent bool
	// TraceContextTTL is how long the trace context stored with each traced
	// task (and with each traced event taken without one) lives: one key of
	// about 200 bytes of Redis memory each. Zero or negative:
	// DefaultTraceContextTTL (1 h).
	TraceContextTTL time.Duration
	// MeterProvider receives the watcher's metrics; nil counts nothing
	// beyond Counts' totals (no matches per rule, no tasks per queue).
	MeterProvider metric.MeterProvider
}

// RetrySettings schedule again, in Redis, an event whose fetch still failed
// after the fetch client's own retries: the event leaves the taken list for
// the delay schedule of its input queue, from where the leader promotes it
// back to the input queue when due. Zero (or negative) fields take the
// defaults, the configuration's (which refuses a 0 for each).
type RetrySettings struct {
	// Attempts is how many times an event's fetches are attempted in all;
	// the failure of the last attempt sends the event to the dead-letter
	// list. Zero: DefaultRetryAttempts (8).
	Attempts int
	// Delay is the wait after the first failed attempt, doubling after
	// each further one. Zero: DefaultRetryDelay (5 s).
	Delay time.Duration
	// MaxDelay caps the wait. Zero: DefaultRetryMaxDelay (10 min); a
	// MaxDelay below Delay is taken as Delay (package config refuses it).
	MaxDelay time.Duration
	// AttemptsTTL is how long an event's attempts are remembered after
	// its last failure. Zero: DefaultAttemptsTTL (24 h); never less than
	// twice MaxDelay plus an hour. Identical events share their attempts (they are
	// counted by the event's text), as they share crash replay counts.
	AttemptsTTL time.Duration
}

// Defaults of RetrySettings.
const (
	DefaultRetryAttempts   = config.DefaultRescheduleAttempts
	DefaultRetryDelay      = config.DefaultRescheduleDelay
	DefaultRetryMaxDelay   = config.DefaultRescheduleMaxDelay
	DefaultAttemptsTTL     = 24 * time.Hour
	DefaultTraceContextTTL = time.Hour
	DefaultDrainTimeout    = 30 * time.Second
)

// WithDefaults returns r with every zero field set to its default.
func (r RetrySettings) WithDefaults() RetrySettings {
	if r.Attempts <= 0 {
		r.Attempts = DefaultRetryAttempts
	}
	if r.Delay <= 0 {
		r.Delay = DefaultRetryDelay
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = DefaultRetryMaxDelay
	}
	r.MaxDelay = max(r.MaxDelay, r.Delay)
	if r.AttemptsTTL <= 0 {
		r.AttemptsTTL = DefaultAttemptsTTL
	}
	// The attempts must outlive the longest wait between two attempts, else
	// an event would never reach its last attempt.
	r.AttemptsTTL = max(r.AttemptsTTL, 2*r.MaxDelay+time.Hour)
	return r
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}
