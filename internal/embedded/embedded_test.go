package embedded

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/testutil"
)

func TestLoopbackAddr(t *testing.T) {
	for in, want := range map[string]string{
		"redis://127.0.0.1/":        "127.0.0.1:6379",
		"redis://localhost:7000/0":  "127.0.0.1:7000",
		"redis://[::1]:7001":        "[::1]:7001",
		"redis://10.0.0.1:6379/":    "",
		"redis://example.com:6379/": "",
		"rediss://127.0.0.1:6379/":  "",
		"unix:///run/redis.sock":    "",
		"::not a url":               "",
	} {
		if got := loopbackAddr(in); got != want {
			t.Errorf("loopbackAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStart(t *testing.T) {
	// Take a free port, then ask for it: the server must use it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := Start("redis://" + addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Addr() != addr {
		t.Errorf("Addr = %s, want %s", s.Addr(), addr)
	}
	// A busy port: another free port is used instead.
	s2, err := Start("redis://" + addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Addr() == addr {
		t.Error("second server on a busy port")
	}
	c := redis.NewClient(&redis.Options{Addr: s2.Addr()})
	defer c.Close()
	if err := c.LPush(context.Background(), "q", "e").Err(); err != nil {
		t.Fatal(err)
	}
}

// TestRunExpiresKeys: while Run runs, a key set with a TTL expires as on a
// Redis (a heartbeat that is not renewed disappears), a longer TTL runs
// down, and a key without a TTL stays; Run returns when its ctx is done.
func TestRunExpiresKeys(t *testing.T) {
	s, err := Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	if err := c.Set(ctx, "beat", "1", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "lease", "1", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "kept", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the key with a 300 ms TTL to expire", func() bool {
		n, err := c.Exists(ctx, "beat").Result()
		return err == nil && n == 0
	})
	if ttl := c.PTTL(ctx, "lease").Val(); ttl >= time.Hour || ttl < 59*time.Minute {
		t.Errorf("PTTL lease = %v, want a little under 1h", ttl)
	}
	if n := c.Exists(ctx, "kept").Val(); n != 1 {
		t.Error("the key without a TTL is gone")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its ctx was done")
	}
}
