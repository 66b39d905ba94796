package script

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redistest"
)

// TestNoPermission: a command refused inside a script is named from the
// script's line; one refused outside is named from the command sent; other
// errors are not permission errors.
func TestNoPermission(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	if err := srv.Client().Do(ctx, "ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-lpos").Err(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "app", Password: "pw"})
	defer c.Close()
	s := New("#!lua\nlocal a = 1\nreturn redis.call('LPOS', KEYS[1], 'x')\n")
	d, err := Detect(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(ctx, d, c, []string{"k"}).Err()
	msg, ok := NoPermission(err, "evalsha")
	if !ok || !strings.Contains(msg, "may not run LPOS") || !strings.Contains(msg, "+lpos") {
		t.Errorf("in a script: NoPermission(%v) = %q, %v; want LPOS named", err, msg, ok)
	}
	err = c.LPos(ctx, "k", "x", redis.LPosArgs{}).Err()
	if msg, ok := NoPermission(err, "lpos"); !ok || !strings.Contains(msg, "may not run LPOS") {
		t.Errorf("outside a script: NoPermission(%v) = %q, %v; want LPOS named", err, msg, ok)
	}
	for _, err := range []error{nil, errors.New("NOPERM lookalike, not a reply"), c.Get(ctx, "missing").Err(), c.Do(ctx, "NOSUCHCOMMAND").Err()} {
		if msg, ok := NoPermission(err, "get"); ok {
			t.Errorf("NoPermission(%v) = %q, want no permission error", err, msg)
		}
	}
}
