package loadtest

import (
	"context"
	"fmt"
	"os"

	"github.com/resc-go/resc/internal/redisserver"
)

// privateRedis is a redis-server process the generator started for itself
// (loopback only, a free port, no persistence), its files in a temporary
// directory removed on stop.
type privateRedis struct {
	*redisserver.Server
	dir string
}

// startRedis starts a private redis-server.
func startRedis(ctx context.Context) (*privateRedis, error) {
	dir, err := os.MkdirTemp("", "resc-load-redis-")
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	s, err := redisserver.Start(ctx, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("loadtest: cannot start redis-server (scripts/ensure-redis.sh installs it), or give --redis-url: %w", err)
	}
	return &privateRedis{Server: s, dir: dir}, nil
}

// stop kills the server (nothing is kept) and removes its directory.
func (r *privateRedis) stop() {
	r.Kill()
	_ = os.RemoveAll(r.dir)
}
