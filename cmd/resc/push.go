package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/resc-go/resc/internal/redisconn"
	"github.com/resc-go/resc/telemetry"
)

// cmdPush is `resc push [--redis-url URL] QUEUE EVENT...`: LPUSH, for trying
// resc-go on a machine without redis-cli.
func cmdPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("push", stderr)
	url := fs.String("redis-url", envOr("RESC_REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL")
	pos, err := positional(fs, args, 2, true, "usage: resc push [--redis-url URL] QUEUE EVENT...")
	if err != nil {
		return err
	}
	telemetry.RouteRedisLog(slog.New(slog.DiscardHandler)) // its dial errors come back below
	c, err := redisconn.Open(ctx, redisconn.Options{URL: *url, MaxRetries: -1, Getenv: os.Getenv})
	var setup *redisconn.Error
	switch {
	case errors.As(err, &setup):
		return &exitError{code: 2, msg: err.Error()}
	case err != nil:
		return fmt.Errorf("LPUSH %s: %w", pos[0], err)
	}
	defer c.Close()
	events := make([]any, len(pos)-1)
	for i, e := range pos[1:] {
		events[i] = e
	}
	n, err := c.LPush(ctx, pos[0], events...).Result()
	if err != nil {
		return fmt.Errorf("LPUSH %s: %w", pos[0], err)
	}
	fmt.Fprintf(stdout, "pushed %d event(s) to %s (length now %d)\n", len(events), pos[0], n)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
