// Package redisserver runs private redis-server processes: bound to
// loopback on a free port, nothing saved (no RDB snapshots, no AOF) unless
// the caller's arguments ask for it, files in a directory the caller owns.
// The tests (internal/redistest) and the load generator (loadtest) start
// their servers with it.
package redisserver

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
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrExited is wrapped by the error of a start whose server exited before it
// answered, most often because its port was taken meanwhile: starting again
// (on another port, or on the same one a moment later) may succeed.
var ErrExited = errors.New("redis-server exited")

// answerTimeout is how long a started server has to answer.
const answerTimeout = 10 * time.Second

// A Server is a running redis-server process.
type Server struct {
	cmd    *exec.Cmd
	dir    string
	port   int
	exited chan struct{}
	// password is the value of a --requirepass argument: the readiness
	// check authenticates with it.
	password string
}

// Start starts redis-server on a free loopback port, its files in dir, with
// args added to its command line, and returns once it answers. A port found
// free can be taken before the server binds it: up to five ports are tried.
func Start(ctx context.Context, dir string, args ...string) (*Server, error) {
	return onFreePort(func(port int) (*Server, error) { return StartOn(ctx, dir, port, args...) })
}

// onFreePort calls start with a free port, again with another one (up to
// five) while the server exits at once, its port taken meanwhile.
func onFreePort(start func(port int) (*Server, error)) (*Server, error) {
	var errs []error
	for range 5 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		s, err := start(port)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, ErrExited) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// StartOn starts redis-server on port, as Start does; the port may still be
// held for a moment after an earlier server on it exited (ErrExited).
func StartOn(ctx context.Context, dir string, port int, args ...string) (*Server, error) {
	return startOn(ctx, "redis-server", dir, port, append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--loglevel", "warning",
		"--logfile", filepath.Join(dir, "redis.log"),
	}, args...))
}

// StartSentinel starts redis-sentinel on a free loopback port with the
// configuration conf (which it rewrites as it learns), its log in dir.
func StartSentinel(ctx context.Context, dir, conf string) (*Server, error) {
	return onFreePort(func(port int) (*Server, error) {
		return startOn(ctx, "redis-sentinel", dir, port, []string{conf,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log")})
	})
}

func startOn(ctx context.Context, name, dir string, port int, args []string) (*Server, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s not found: %w", name, err)
	}
	s := &Server{dir: dir, port: port, exited: make(chan struct{})}
	for i, a := range args {
		if a == "--requirepass" && i+1 < len(args) {
			s.password = args[i+1]
		}
	}
	s.cmd = exec.Command(bin, args...)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.awaitAnswer(ctx); err != nil {
		s.Kill()
		return nil, err
	}
	return s, nil
}

// awaitAnswer waits until the server answers INFO with its own process id:
// another server answering on the port means ours cannot bind it.
func (s *Server) awaitAnswer(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.password, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(answerTimeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("%w on port %d: %s", ErrExited, s.port, s.LogTail())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		actx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		pid, err := serverPID(actx, c)
		cancel()
		switch {
		case err == nil && pid == s.PID():
			return nil
		case err == nil:
			return fmt.Errorf("%w on port %d: the port is another server's", ErrExited, s.port)
		case time.Now().After(deadline):
			return fmt.Errorf("redis-server on port %d did not answer within %v: %w; log: %s", s.port, answerTimeout, err, s.LogTail())
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-s.exited:
		case <-ctx.Done():
		}
	}
}

// serverPID asks a server its process id (INFO server).
func serverPID(ctx context.Context, c *redis.Client) (int, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	v := InfoField(info, "process_id")
	if v == "" {
		return 0, errors.New("no process_id in INFO server")
	}
	return strconv.Atoi(v)
}

// InfoField returns the value of one "name:value" line of an INFO reply, or
// "" when there is none.
func InfoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("no free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the server's redis:// URL (database 0).
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// LogTail returns the last five lines of the server's log, joined by " | ".
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// Kill kills the server (SIGKILL: nothing more is saved) and waits until
// the process has exited, its port closed with it. Killing it again does
// nothing.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}
