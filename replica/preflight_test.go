package replica

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/rules"
)

// TestPreflight: a user with every permission a replica needs passes; one
// missing a command, a key pattern or the channel is refused before the
// replica registers, each refusal named as what it is.
func TestPreflight(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	cfg, err := config.LoadBytes("c.hjson", []byte(`{redis: {url: "redis://127.0.0.1:1/"}, listener_channel: "events",
  watchers: [{input_queue: "in/q", rules: [{on: "^a$", make: {queue: "out/q"}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rs, ps := rules.Compile(cfg.Path, cfg.Watchers[0])
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	full := []any{"on", ">pw", "resetkeys", "resetchannels", "-@all", "+@read", "+@write", "+eval", "+evalsha", "+script|load", "+scan", "+ping", "+publish", "~resc:*", "~in/*", "&events"}
	for _, tc := range []struct {
		name string
		acl  []any
		want string // "" for none
	}{
		{"all", nil, ""},
		{"no lrem", []any{"-lrem"}, "may not run LREM: add +lrem to its ACL rule"},
		{"no get nor set", []any{"-get", "-set"}, "may not run GET, SET: add +get +set"},
		{"no input queue", []any{"resetkeys", "~resc:*", "~in/q/taken/*"}, "may not access the key in/q, in/q/dead"},
		{"no channel", []any{"resetchannels"}, "may not run PUBLISH on channel events (add +publish, or a pattern matching it)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := "u" + strings.ReplaceAll(tc.name, " ", "")
			rule := append(append([]any{"ACL", "SETUSER", user}, full...), tc.acl...)
			if err := srv.Client().Do(ctx, rule...).Err(); err != nil {
				t.Fatal(err)
			}
			c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: "pw"})
			defer c.Close()
			r, err := New(Options{ID: "r1", Config: cfg, Rules: []*rules.Ruleset{rs}, Redis: c})
			if err != nil {
				t.Fatal(err)
			}
			err = r.preflight(ctx, script.Dialect{})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (!errors.Is(err, ErrNoPermission) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("preflight = %v, want ErrNoPermission and %q", err, tc.want)
			}
		})
	}
}
