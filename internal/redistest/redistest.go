// Package redistest starts real redis-server processes for tests, each on a
// free loopback port of its own, so that no test ever touches a server it did
// not start. The server keeps no data on disk unless asked and is stopped
// when the test ends.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server process started by a test.
type Server struct {
	t    testing.TB
	dir  string
	port int
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Option adds redis-server arguments, e.g. Option("--maxmemory", "1mb").
type Option []string

// Start starts a redis-server on a free port and stops it at the end of the
// test. It fails the test when redis-server is not installed (`make test`
// installs it).
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found in PATH (run `make test`, which installs it): %v", err)
	}
	s := &Server{t: t, dir: t.TempDir()}
	for _, o := range opts {
		s.args = append(s.args, o...)
	}
	// A free port can be taken by someone else between our probe and the
	// server's bind: retry with another port when the bind fails.
	var lastErr error
	for range 5 {
		s.port = freePort(t)
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("redistest: cannot start redis-server: %v", lastErr)
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: no free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--loglevel", "warning",
		"--logfile", filepath.Join(s.dir, "redis.log"),
	}
	args = append(args, s.args...)
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Wait until it answers PING, or exits (port taken), or 10 s pass.
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case werr := <-exited:
			return fmt.Errorf("redis-server exited: %v; log: %s", werr, s.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		if err == nil {
			// The port may be another process's server (ours failed to
			// bind and has not exited yet): only ours counts.
			err = checkPID(ctx, c, cmd.Process.Pid)
		}
		cancel()
		if errors.Is(err, errNotOurs) {
			_ = cmd.Process.Kill()
			return fmt.Errorf("redis-server exited: port %d answered by another server", s.port)
		}
		if err == nil {
			s.mu.Lock()
			s.cmd = cmd
			s.mu.Unlock()
			go func() { <-exited }() // reap later; Stop waits on the process
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("redis-server exited: %v; log: %s", werr, s.logTail())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return fmt.Errorf("redis-server did not answer PING within 10s; log: %s", s.logTail())
		}
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
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

// Stop kills the server (SIGKILL: nothing is saved) and waits until its port
// is closed. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	waitClosed(s.Addr())
}

// Restart starts the server again on the same port (after Stop), with an
// empty dataset unless persistence options were given.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for range 50 {
		if err = s.start(); err == nil {
			return
		}
		if !strings.Contains(err.Error(), "exited") {
			break
		}
		time.Sleep(20 * time.Millisecond) // the kernel may hold the port for a moment
	}
	s.t.Fatalf("redistest: restart failed: %v", err)
}

func waitClosed(addr string) {
	for range 500 {
		c, err := net.DialTimeout("tcp", addr, 50*time.Millisecond)
		if err != nil {
			return
		}
		_ = c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

var errNotOurs = errors.New("redistest: the server on this port is not the one started")

// checkPID asks the server its process id and compares it with ours.
func checkPID(ctx context.Context, c *redis.Client, pid int) error {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			if v != strconv.Itoa(pid) {
				return errNotOurs
			}
			return nil
		}
	}
	return errors.New("redistest: no process_id in INFO server")
}
