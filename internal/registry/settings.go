package registry

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Settings: the same values as config's (DefaultKeyPrefix,
// DefaultHeartbeatInterval, DefaultDeadAfter), which package config
// states for a configuration file; a test of package membership checks
// that the two agree. They are restated here so that a worker program,
// which registers too, does not link the configuration loader.
const (
	DefaultPrefix            = "resc:"
	DefaultHeartbeatInterval = time.Second
	DefaultDeadAfter         = 5 * time.Second
)

// Settings are the timings of a registration and the prefix of its keys,
// shared by every replica and worker of a deployment. A zero field means
// its default.
type Settings struct {
	// Prefix is the prefix of the registry keys (package keyspace).
	// Default "resc:".
	Prefix string

	// HeartbeatInterval is how often a registration is renewed. It must
	// be below DeadAfter/2: a replica or worker stops working (its lease
	// ends) DeadAfter - 2*HeartbeatInterval after the last renewal it
	// sent that succeeded, which leaves it two heartbeats to react before
	// the others may consider it dead. Default 1 s.
	HeartbeatInterval time.Duration

	// DeadAfter is the TTL of the registration's key: a registration not
	// renewed for that long is dead to the others, who then replay its
	// taken lists. Default 5 s.
	DeadAfter time.Duration
}

// WithDefaults returns s with every zero field set to its default.
func (s Settings) WithDefaults() Settings {
	if s.Prefix == "" {
		s.Prefix = DefaultPrefix
	}
	if s.HeartbeatInterval == 0 {
		s.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if s.DeadAfter == 0 {
		s.DeadAfter = DefaultDeadAfter
	}
	return s
}

// TestSettings are short timings for tests: heartbeat every 100 ms, dead
// after 500 ms. Prefix is left to the caller.
func TestSettings() Settings {
	return Settings{HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 500 * time.Millisecond}
}

// Validate reports every problem of s with its defaults applied:
// negative durations, durations below a millisecond (Redis TTLs count
// milliseconds), and a heartbeat interval of DeadAfter/2 or more.
func (s Settings) Validate() error {
	return errors.Join(s.Problems()...)
}

// Problems is Validate's list, for callers that add their own.
func (s Settings) Problems() []error {
	s = s.WithDefaults()
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"HeartbeatInterval", s.HeartbeatInterval},
		{"DeadAfter", s.DeadAfter},
	} {
		if f.d < time.Millisecond {
			errs = append(errs, TooShort(f.name, f.d))
		}
	}
	if s.HeartbeatInterval >= s.DeadAfter/2 {
		errs = append(errs, fmt.Errorf("membership: HeartbeatInterval (%v) must be below half of DeadAfter (%v): a replica needs two heartbeats of margin to stop working before the others consider it dead",
			s.HeartbeatInterval, s.DeadAfter))
	}
	return errs
}

// TooShort is the problem of a duration setting below a millisecond.
func TooShort(name string, d time.Duration) error {
	return fmt.Errorf("membership: %s is %v: it must be at least 1ms (zero means the default)", name, d)
}

// LeaseFor is how long a lease lasts after the last renewal that was sent
// and succeeded: DeadAfter minus two heartbeat intervals of margin.
func (s Settings) LeaseFor() time.Duration {
	return s.DeadAfter - 2*s.HeartbeatInterval
}

// ms is d in whole milliseconds, rounded up: a TTL is never shorter than d.
func ms(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
