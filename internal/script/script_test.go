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
			// EvalSha before Load is NOSCRIPT on a fresh server... the Run
			// above loaded it; flush the cache to see NOSCRIPT.
			if err := tc.c.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			err = echo.EvalSha(ctx, d, tc.c, []string{"k"}, "v").Err()
			if !IsNoScript(err) {
				t.Fatalf("EvalSha after SCRIPT FLUSH: %v, want NOSCRIPT", err)
			}
			if err := echo.Load(ctx, d, tc.c); err != nil {
				t.Fatal(err)
			}
			if err := echo.EvalSha(ctx, d, tc.c, []string{"k"}, "v").Err(); err != nil {
				t.Fatalf("EvalSha after Load: %v", err)
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
