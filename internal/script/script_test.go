package script

import (
	"context"
	"errors"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redistest"
)

var echo = New("#!lua\nreturn {KEYS[1], ARGV[1]}\n")

func TestDetectAndRun(t *testing.T) {
	real := redistest.Start(t).Client()
	m := miniredis.RunT(t)
	mini := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { mini.Close() })
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		c      *redis.Client
		legacy bool
	}{
		{"redis-server 7", real, false},
		{"miniredis", mini, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Detect(ctx, tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if d.Legacy != tc.legacy {
				t.Fatalf("Legacy = %v, want %v", d.Legacy, tc.legacy)
			}
			got, err := echo.Run(ctx, d, tc.c, []string{"k"}, "v").StringSlice()
			if err != nil || len(got) != 2 || got[0] != "k" || got[1] != "v" {
				t.Fatalf("Run = %q, %v", got, err)
			}
			// After SCRIPT FLUSH the call laid out by Args is NOSCRIPT,
			// and Do loads the script and sends it again.
			if err := tc.c.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			args := echo.Args(nil, d, []any{"k"}, "v")
			if cmd := redis.NewCmd(ctx, args...); tc.c.Process(ctx, cmd) == nil || !IsNoScript(cmd.Err()) {
				t.Fatalf("EVALSHA after SCRIPT FLUSH: %v, want NOSCRIPT", cmd.Err())
			}
			sent := 0
			cmd := Do(ctx, echo, d, tc.c, func() *redis.StringSliceCmd {
				sent++
				cmd := redis.NewStringSliceCmd(ctx, args...)
				_ = tc.c.Process(ctx, cmd)
				return cmd
			})
			if got, err := cmd.Result(); err != nil || sent != 2 || len(got) != 2 || got[1] != "v" {
				t.Fatalf("Do after SCRIPT FLUSH: %q, %v, sent %d times; want the reply on the second send", got, err, sent)
			}
			// Loaded now: once is enough, and Run finds it loaded too.
			sent = 0
			if cmd := Do(ctx, echo, d, tc.c, func() *redis.Cmd {
				sent++
				cmd := redis.NewCmd(ctx, args...)
				_ = tc.c.Process(ctx, cmd)
				return cmd
			}); cmd.Err() != nil || sent != 1 {
				t.Fatalf("Do with the script loaded: %v, sent %d times, want once", cmd.Err(), sent)
			}
			if err := tc.c.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if got, err := echo.Run(ctx, d, tc.c, []string{"k"}, "v").StringSlice(); err != nil || len(got) != 2 {
				t.Fatalf("Run after SCRIPT FLUSH = %q, %v", got, err)
			}
		})
	}
}

func TestDetectUnreachable(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	srv.Stop()
	if _, err := Detect(context.Background(), c); err == nil {
		t.Fatal("Detect on a stopped server: no error")
	}
}

// TestDoLoadFails: a load that fails is the error of the call.
func TestDoLoadFails(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	ctx := context.Background()
	d, err := Detect(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	cmd := Do(ctx, echo, d, c, func() *redis.Cmd {
		cmd := c.EvalSha(ctx, echo.Hash(d), []string{"k"}, "v")
		srv.Stop() // the load that follows cannot reach the server
		return cmd
	})
	if err := cmd.Err(); err == nil || IsNoScript(err) {
		t.Fatalf("Do with a failing load: %v, want the load's error", err)
	}
}

func TestIsNoScript(t *testing.T) {
	if IsNoScript(errors.New("NOSCRIPT but not a redis error")) {
		t.Error("a plain error is not NOSCRIPT")
	}
	if IsNoScript(nil) {
		t.Error("nil is not NOSCRIPT")
	}
}

func TestNewRefusesScriptWithoutShebang(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New accepted a script without #!lua")
		}
	}()
	New("return 1")
}
