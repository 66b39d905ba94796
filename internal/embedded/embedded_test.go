package embedded

import (
	"context"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"
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
