// Package redistest starts real redis-server processes for tests, each on a
// free loopback port of its own, so that no test ever touches a server it did
// not start. The server keeps no data on disk unless asked and is stopped
// when the test ends.
package redistest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redisserver"
)

// Server is a redis-server process started by a test.
type Server struct {
	t    testing.TB
	dir  string
	port int
	args []string

	mu  sync.Mutex
	srv *redisserver.Server // nil when stopped
}

// Option adds redis-server arguments, e.g. Option("--maxmemory", "1mb").
type Option []string

// Start starts a redis-server on a free port and stops it at the end of the
// test. It fails the test when redis-server is not installed (`make test`
// installs it).
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir()}
	for _, o := range opts {
		s.args = append(s.args, o...)
	}
	srv, err := redisserver.Start(context.Background(), s.dir, s.args...)
	if err != nil {
		t.Fatalf("redistest: cannot start redis-server (`make test` installs it): %v", err)
	}
	s.srv, s.port = srv, srv.Port()
	t.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Client returns a new client of the server, closed at the end of the test.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// stopped tells whether the server is stopped.
func (s *Server) stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv == nil
}

// Stop kills the server (SIGKILL: nothing is saved) and waits until it has
// exited, its port closed. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Kill()
	}
}

// Restart starts the server again on the same port (after Stop), with an
// empty dataset unless persistence options were given.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for range 50 {
		var srv *redisserver.Server
		if srv, err = redisserver.StartOn(context.Background(), s.dir, s.port, s.args...); err == nil {
			s.mu.Lock()
			s.srv = srv
			s.mu.Unlock()
			return
		}
		if !errors.Is(err, redisserver.ErrExited) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the kernel may hold the port for a moment
	}
	s.t.Fatalf("redistest: restart failed: %v", err)
}
