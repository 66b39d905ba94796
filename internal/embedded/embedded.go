// Package embedded runs an in-process, in-memory Redis-compatible server
// (github.com/alicebob/miniredis) so that `make run` works on a machine with
// no Redis installed. It is for trying and developing only: nothing is
// persisted, and its Lua support is not Redis' (no "#!lua" shebang).
package embedded

import (
	"fmt"
	"net"
	"net/url"
	"strings"

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
