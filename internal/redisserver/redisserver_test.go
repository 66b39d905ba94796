package redisserver

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestStartAndKill: a started server answers as itself; a second server on
// its port is refused with ErrExited (not taken for the first one); after
// Kill the port is closed and a server can start on it again.
func TestStartAndKill(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Kill()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := InfoField(info, "process_id"); got == "" || got != strconv.Itoa(s.PID()) {
		t.Fatalf("process_id %q, want %d", got, s.PID())
	}

	_, err = StartOn(ctx, t.TempDir(), s.Port())
	if !errors.Is(err, ErrExited) {
		t.Fatalf("a second server on port %d: %v, want ErrExited", s.Port(), err)
	}

	s.Kill()
	select {
	case <-s.Exited():
	default:
		t.Fatal("Exited not closed after Kill")
	}
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatalf("port %d still open after Kill", s.Port())
	}
	s.Kill() // again: nothing

	var again *Server
	for range 50 { // the kernel may hold the port for a moment
		if again, err = StartOn(ctx, t.TempDir(), s.Port()); !errors.Is(err, ErrExited) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	again.Kill()
}

func TestInfoField(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nprocess_id:42\r\n"
	for name, want := range map[string]string{"redis_version": "7.0.15", "process_id": "42", "tcp_port": "", "process": ""} {
		if got := InfoField(info, name); got != want {
			t.Errorf("InfoField(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestStartCluster: a cluster of one master serves every slot; one of two
// masters splits them, each node serving its half, and a cluster client
// writes to both.
func TestStartCluster(t *testing.T) {
	ctx := context.Background()
	for _, masters := range []int{1, 2} {
		nodes, err := StartCluster(ctx, t.TempDir(), masters)
		if err != nil {
			t.Fatal(err)
		}
		var addrs []string
		for _, n := range nodes {
			addrs = append(addrs, n.Addr())
		}
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		shards, err := cc.ClusterShards(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(shards) != masters {
			t.Errorf("%d masters: %d shards, want %d: %v", masters, len(shards), masters, shards)
		}
		served := 0
		for _, sh := range shards {
			for _, r := range sh.Slots {
				served += int(r.End-r.Start) + 1
			}
		}
		if served != 16384 {
			t.Errorf("%d masters: %d slots served, want 16384", masters, served)
		}
		// "a" is in slot 15495, "b" in 3300: one each side with two masters.
		for _, k := range []string{"a", "b"} {
			if err := cc.Set(ctx, k, "v", 0).Err(); err != nil {
				t.Errorf("%d masters: SET %s: %v", masters, k, err)
			}
		}
		cc.Close()
		for _, n := range nodes {
			n.Kill()
		}
	}
}
