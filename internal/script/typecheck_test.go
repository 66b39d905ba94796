package script

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redistest"
)

var types = New("#!lua flags=no-writes\nreturn {type_of(KEYS[1]), type_of(KEYS[2]), is(KEYS[1], 'list') and 1 or 0, is(KEYS[2], 'list') and 1 or 0, is(KEYS[3], 'hash') and 1 or 0}\n", TypeCheck)

// TestTypeCheck runs the TypeCheck prelude in both dialects: a real
// redis-server (#!lua kept) and the embedded server (the line stripped).
func TestTypeCheck(t *testing.T) {
	ctx := context.Background()
	for _, c := range bothServers(t) {
		d, err := Detect(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		c.RPush(ctx, "l", "x")
		c.Set(ctx, "s", "x", 0)
		got, err := types.Run(ctx, d, c, []string{"l", "s", "none"}).Slice()
		if err != nil {
			t.Fatalf("legacy %v: %v", d.Legacy, err)
		}
		if want := []any{"list", "string", int64(1), int64(0), int64(1)}; !slices.Equal(got, want) {
			t.Errorf("legacy %v: %v, want %v", d.Legacy, got, want)
		}
	}
}

func TestTypeError(t *testing.T) {
	errDead := errors.New("pkg: the dead-letter list is not a list")
	err := error(&TypeError{Key: "in/dead", Err: errDead})
	if !errors.Is(err, errDead) || !errors.Is(err, ErrWrongType) {
		t.Errorf("%v: errors.Is misses its sentinels", err)
	}
	if got, want := err.Error(), `pkg: the dead-letter list is not a list: "in/dead"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	real := redistest.Start(t).Client()
	ctx := context.Background()
	real.Set(ctx, "s", "x", 0)
	if !IsWrongTypeReply(real.LLen(ctx, "s").Err()) || IsWrongTypeReply(errDead) || IsWrongTypeReply(nil) {
		t.Error("IsWrongTypeReply")
	}
}

// bothServers returns a client of a real redis-server (#!lua kept) and one
// of the embedded server (the line stripped), each started for t.
func bothServers(t *testing.T) []*redis.Client {
	real := redistest.Start(t).Client()
	m := miniredis.RunT(t)
	mini := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { mini.Close() })
	return []*redis.Client{real, mini}
}
