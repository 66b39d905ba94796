// Package backoff holds the retry delays of the loops that wait out a Redis
// outage, and the rate-limited logging of such an outage.
package backoff

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Delay is the wait before retry number attempt (1 for the first retry):
// exponential from 50 ms, capped at 2 s, with up to 25% jitter so that
// replicas do not retry in step.
func Delay(attempt int) time.Duration {
	d := 50 * time.Millisecond
	for i := 1; i < attempt && d < 2*time.Second; i++ {
		d *= 2
	}
	d = min(d, 2*time.Second)
	return d - time.Duration(rand.Int64N(int64(d/4)+1))
}

// Sleep waits d or until ctx is done; it reports whether the wait ended
// normally.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Outage logs a dependency going away and coming back once each, instead
// of once per failed loop turn. The zero value is not usable: use
// NewOutage. Safe for concurrent use.
type Outage struct {
	log  *slog.Logger
	what string

	mu       sync.Mutex
	down     bool
	since    time.Time
	failures int
	refused  time.Time // when a refusal was last logged
}

// NewOutage returns an Outage logging about what (e.g. "redis") to log.
func NewOutage(log *slog.Logger, what string) *Outage {
	return &Outage{log: log, what: what}
}

// refusedEvery is how often Fail logs a refusal again while it lasts.
const refusedEvery = 10 * time.Second

// Fail records a failure; the first of an outage is logged at error level.
//
// A refusal of the ACL (a NOPERM reply, or a command refused inside a
// script) is not an outage: a retry does not mend it, and calling it one
// hides a replica that does nothing. Fail logs it as what it is, at error
// level, at most every 10 seconds while it lasts, and does not count it
// as an outage. (`resc run` stops at the first refusal; the worker SDK
// keeps retrying, loudly.)
func (o *Outage) Fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if refusal(err) {
		if now := time.Now(); now.Sub(o.refused) >= refusedEvery {
			o.refused = now
			o.log.Error(o.what+" refused a command, key or channel to the ACL user: not an outage; fix the ACL rule (retrying)", "err", err)
		}
		return
	}
	o.failures++
	if o.down {
		return
	}
	o.down, o.since = true, time.Now()
	o.log.Error(o.what+" unavailable, retrying with backoff", "err", err)
}

// refusal tells, from its text, Redis refusing a command, key or channel
// to the ACL user (script.IsNoPermission, which names it, and which this
// leaf package does not import).
func refusal(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "NOPERM") || strings.Contains(msg, "The user executing the script can't")
}

// OK records a success; after an outage it logs the recovery once.
func (o *Outage) OK() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.down {
		return
	}
	o.log.Warn(o.what+" available again", "failures", o.failures, "down_for", time.Since(o.since).Round(time.Millisecond))
	o.down, o.failures = false, 0
}

// Down reports whether the last call was a failure.
func (o *Outage) Down() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.down
}
