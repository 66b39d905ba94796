// Package embedded runs an in-process, in-memory Redis-compatible server
// (github.com/alicebob/miniredis) so that `make run` works on a machine with
// no Redis installed. It is for trying and developing only: nothing is
// persisted, and its Lua support is not Redis' (no "#!lua" shebang).
//
// miniredis keeps a key's TTL but lets it run down only when told to; Run
// tells it, so that keys expire as on a real Redis (within a Tick): a
// replica that stops renewing its heartbeat is seen dead, and its events
// are recovered.
package embedded

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Server is a running embedded server.
type Server struct {
	m *miniredis.Miniredis
}

// Start starts a server on the host:port of redisURL when that is a
// loopback address and the port is free, else on a free loopback port.
func Start(redisURL string) (*Server, error) {
	m := miniredis.NewMiniRedis()
	addr := loopbackAddr(redisURL)
	if addr != "" {
		if err := m.StartAddr(addr); err == nil {
			return &Server{m: m}, nil
		}
	}
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("embedded: cannot start: %w", err)
	}
	return &Server{m: m}, nil
}

// loopbackAddr is the host:port of a redis:// URL on a loopback host, "" otherwise.
func loopbackAddr(redisURL string) string {
	u, err := url.Parse(redisURL)
	if err != nil || u.Scheme != "redis" {
		return ""
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "6379"
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return ""
	}
	return net.JoinHostPort(host, port)
}

// Tick is how often Run makes the server's TTLs run down: a key expires at
// most one Tick late (Redis expires it at its deadline, on access).
const Tick = 100 * time.Millisecond

// Run makes time pass for the server's TTLs until ctx is done, then
// returns nil. Without it, no key ever expires. Each turn walks every key
// once (miniredis' FastForward), so a Tick costs in proportion to the keys,
// not to the commands, unlike miniredis' ClockTTL, which walks and sorts
// every key on every command.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(Tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			// The time really elapsed (monotonic), not the nominal
			// Tick: a late turn expires what it must.
			s.m.FastForward(now.Sub(last))
			last = now
		}
	}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.m.Addr() }

// Port is the server's port.
func (s *Server) Port() string { return s.m.Port() }

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.m.Addr() + "/0" }

// Close stops the server.
func (s *Server) Close() { s.m.Close() }

// IsLoopbackURL reports whether a redis:// URL points at this machine.
func IsLoopbackURL(redisURL string) bool {
	return loopbackAddr(redisURL) != "" || strings.HasPrefix(redisURL, "unix://")
}
