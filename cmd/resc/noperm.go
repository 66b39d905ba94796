package main

import (
	"context"
	"net"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/script"
)

// permissionGuard stops the replica at the first command Redis refuses to
// its ACL user: a missing permission is a setup problem no retry mends,
// and an operator must read which command it is rather than a log of
// retries. It is a go-redis hook.
type permissionGuard struct {
	stop func(error)
	once sync.Once
}

// guardPermissions adds the guard to rdb; stop is called once, with the
// exit error of the first refusal.
func guardPermissions(rdb redis.UniversalClient, stop func(error)) {
	rdb.AddHook(&permissionGuard{stop: stop})
}

func (g *permissionGuard) check(cmd redis.Cmder) {
	switch cmd.Name() {
	case "client", "hello":
		return // connection set-up go-redis does without when refused
	case "acl":
		return // redisconn.Restricted's probe: a refusal means a restricted user
	}
	if msg, ok := script.NoPermission(cmd.Err(), cmd.Name()); ok {
		g.once.Do(func() { g.stop(&exitError{code: 2, msg: msg + "; see the README, Redis ACL"}) })
	}
}

func (g *permissionGuard) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (g *permissionGuard) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		g.check(cmd)
		return err
	}
}

func (g *permissionGuard) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			g.check(c)
		}
		return err
	}
}
