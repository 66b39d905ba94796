package membership

import (
	"errors"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/registry"
)

// Defaults of Settings: the configuration's (package config keeps every
// default of a configuration file).
const (
	DefaultHeartbeatInterval = config.DefaultHeartbeatInterval
	DefaultDeadAfter         = config.DefaultDeadAfter
	DefaultLeaderTTL         = config.DefaultLeaderTTL
)

// Settings are the cluster timings, shared by every replica of a
// deployment, from the configuration's cluster object
// (config.ClusterSettings, which Load checks like Validate). A zero field
// means its default, as a key left out of the configuration does (the
// configuration refuses a 0); a negative one is refused by Validate.
type Settings struct {
	// Prefix is the prefix of the registry and leader keys (package
	// keyspace). Zero: config.DefaultKeyPrefix ("resc:").
	Prefix string

	// HeartbeatInterval is how often a replica renews its heartbeat, and
	// how often an elector that does not lead tries to. It must be below
	// DeadAfter/2: a replica stops working (its lease ends) DeadAfter -
	// 2*HeartbeatInterval after the last renewal it sent that succeeded,
	// which leaves it two heartbeats to react before the others may
	// consider it dead. Zero: DefaultHeartbeatInterval (1 s).
	HeartbeatInterval time.Duration

	// DeadAfter is the TTL of a replica's heartbeat key: a replica whose
	// key was not renewed for that long is dead to the others, who then
	// replay its taken lists. Shorter means faster recovery and more false
	// deaths on a slow network or a paused process (harmless to
	// correctness: the fenced commit refuses a zombie's work, but its
	// events are handled again elsewhere). Zero: DefaultDeadAfter (5 s).
	DeadAfter time.Duration

	// LeaderTTL is the expiry of the leader lock. The leader extends it
	// every LeaderTTL/3; when the leader dies without releasing it, the
	// next leader is elected within LeaderTTL + HeartbeatInterval. Zero:
	// DefaultLeaderTTL (4 s).
	LeaderTTL time.Duration
}

// WithDefaults returns s with every zero field set to its default.
func (s Settings) WithDefaults() Settings {
	if s.Prefix == "" {
		s.Prefix = config.DefaultKeyPrefix
	}
	if s.HeartbeatInterval == 0 {
		s.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if s.DeadAfter == 0 {
		s.DeadAfter = DefaultDeadAfter
	}
	if s.LeaderTTL == 0 {
		s.LeaderTTL = DefaultLeaderTTL
	}
	return s
}

// TestSettings are short timings for tests: heartbeat every 100 ms, dead
// after 500 ms, leader lock of 400 ms. Prefix is left to the caller.
func TestSettings() Settings {
	return Settings{
		HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter:         500 * time.Millisecond,
		LeaderTTL:         400 * time.Millisecond,
	}
}

// Registry is the part of s that a registration uses.
func (s Settings) Registry() registry.Settings {
	return registry.Settings{Prefix: s.Prefix, HeartbeatInterval: s.HeartbeatInterval, DeadAfter: s.DeadAfter}
}

// Validate reports every problem of s with its defaults applied: negative
// durations, durations below a millisecond (Redis TTLs count
// milliseconds), and a heartbeat interval of DeadAfter/2 or more.
func (s Settings) Validate() error {
	s = s.WithDefaults()
	errs := s.Registry().Problems()
	if s.LeaderTTL < time.Millisecond {
		errs = append(errs, registry.TooShort("LeaderTTL", s.LeaderTTL))
	}
	return errors.Join(errs...)
}
