package loadtest

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

// privateRedis is a redis-server process the generator started for itself:
// loopback only, a free port, no persistence (--save "" --appendonly no),
// its files in a temporary directory removed on close.
type privateRedis struct {
	cmd    *exec.Cmd
	dir    string
	addr   string
	exited chan struct{}
}

// startRedis starts a private redis-server on a free loopback port. A port
// found free can be taken before the server binds it: up to five ports are
// tried.
func startRedis(ctx context.Context) (*privateRedis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("loadtest: redis-server not found (scripts/ensure-redis.sh installs it), or give --redis-url: %w", err)
	}
	dir, err := os.MkdirTemp("", "resc-load-redis-")
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	var errs []error
	for range 5 {
		port, err := freePort()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r, err := launchRedis(ctx, bin, dir, port)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err)
	}
	_ = os.RemoveAll(dir)
	return nil, fmt.Errorf("loadtest: cannot start redis-server: %w", errors.Join(errs...))
}

func launchRedis(ctx context.Context, bin, dir string, port int) (*privateRedis, error) {
	r := &privateRedis{dir: dir, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited: make(chan struct{})}
	r.cmd = exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--loglevel", "warning",
		"--logfile", filepath.Join(dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.exited)
	}()
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-r.exited:
			return nil, fmt.Errorf("redis-server on port %d exited: %s", port, r.logTail())
		case <-ctx.Done():
			r.close()
			return nil, ctx.Err()
		default:
		}
		pid, err := serverPID(ctx, c)
		switch {
		case err == nil && pid == r.cmd.Process.Pid:
			return r, nil
		case err == nil:
			// Another server answers on this port; ours will fail to bind.
			r.close()
			return nil, fmt.Errorf("port %d is another server's", port)
		case time.Now().After(deadline):
			r.close()
			return nil, fmt.Errorf("redis-server on port %d did not answer within 10s: %w", port, err)
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-r.exited:
		}
	}
}

// serverPID asks a server its process id (INFO server).
func serverPID(ctx context.Context, c *redis.Client) (int, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	v := infoField(info, "process_id")
	if v == "" {
		return 0, errors.New("no process_id in INFO server")
	}
	return strconv.Atoi(v)
}

// infoField returns the value of one "name:value" line of an INFO reply.
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("no free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (r *privateRedis) url() string { return "redis://" + r.addr + "/0" }

func (r *privateRedis) pid() int { return r.cmd.Process.Pid }

func (r *privateRedis) logTail() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// close kills the server (nothing is kept) and waits for it to exit.
func (r *privateRedis) close() {
	_ = r.cmd.Process.Kill()
	<-r.exited
}

// stop closes the server and removes its directory.
func (r *privateRedis) stop() {
	r.close()
	_ = os.RemoveAll(r.dir)
}
