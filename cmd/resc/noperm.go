package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/replica"
)

// permissionGuard stops the replica at the first command Redis refuses to
// its ACL user: a missing permission is a setup problem no retry mends,
// and an operator must read which command, key or channel it is rather
// than a log of retries (or, worse, a replica that retries quietly while
// it does nothing). It is a go-redis hook.
type permissionGuard struct {
	rdb redis.Cmdable
	// explain names what the user may not use now, for a refusal whose
	// command Redis does not name (a script not resc-go's: the election's);
	// nil error when it cannot tell.
	explain func(context.Context) error
	stop    func(error)
	once    sync.Once
	fired   atomic.Bool // stop was called: the refusals that follow are not looked at
}

// guardPermissions adds the guard to rdb; stop is called once, with the
// exit error of the first refusal. explain, when a refusal does not name
// its command, names what is missing (replica.CheckPermissions).
func guardPermissions(rdb redis.UniversalClient, stop func(error), explain func(context.Context) error) {
	rdb.AddHook(&permissionGuard{rdb: rdb, stop: stop, explain: explain})
}

// probing marks the context of the guard's own probes (RefusedKeys),
// which it does not check.
type probing struct{}

// check looks at the outcome err of cmd. go-redis sets a command's error
// after the hooks have run: ProcessHook passes the error next returned.
func (g *permissionGuard) check(ctx context.Context, cmd redis.Cmder, err error) {
	switch cmd.Name() {
	case "client", "hello":
		return // connection set-up go-redis does without when refused
	case "acl":
		return // redisconn.Restricted's probe: a refusal means a restricted user
	}
	if err == nil || g.fired.Load() || ctx.Value(probing{}) != nil || !script.IsNoPermission(err) {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithValue(context.WithoutCancel(ctx), probing{}, true), 5*time.Second)
	defer cancel()
	var keys []string
	if script.KeysUnnamed(err) {
		// Redis does not say which key: ask it, key by key.
		keys, _ = script.RefusedKeys(pctx, g.rdb, script.CommandKeys(cmd.Args()))
	}
	if msg, ok := script.NoPermissionKeys(err, cmd.Name(), keys); ok {
		if script.CommandUnnamed(err) && g.explain != nil {
			if e := g.explain(pctx); errors.Is(e, replica.ErrNoPermission) {
				msg = permissionWords(e) + " (" + err.Error() + ")"
			}
		}
		g.once.Do(func() {
			g.fired.Store(true)
			g.stop(&exitError{code: 2, msg: msg + "; see docs/redis.md, ACL users"})
		})
	}
}

func (g *permissionGuard) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (g *permissionGuard) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		g.check(ctx, cmd, err)
		return err
	}
}

func (g *permissionGuard) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			g.check(ctx, c, c.Err())
		}
		return err
	}
}

// permissionWords is the message of an error wrapping
// replica.ErrNoPermission, without the sentinel's own words.
func permissionWords(err error) string {
	return strings.TrimPrefix(err.Error(), replica.ErrNoPermission.Error()+": ")
}
