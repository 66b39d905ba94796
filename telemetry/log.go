// Package telemetry sets up what an operator observes of a replica: its log
// (slog, level from RESC_LOG) and its HTTP endpoints (/healthz, /readyz,
// /debug/pprof/).
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ParseLevel reads a RESC_LOG value: error, warn, info or debug, any case
// ("warning" and "trace" are accepted, as resc's RUST_LOG accepted them).
// Empty means warn, resc's default.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	case "info":
		return slog.LevelInfo, nil
	case "debug", "trace":
		return slog.LevelDebug, nil
	}
	return 0, fmt.Errorf("telemetry: unknown log level %q: use error, warn, info or debug", s)
}

// NewLogger returns a text logger writing to w at level.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// redisLogger sends go-redis' internal log lines (a failed dial, once per
// attempt) to slog at debug level: outages are reported once, by the loops
// that wait them out, not once per connection attempt.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// RouteRedisLog makes go-redis log through log, at debug level. go-redis
// has one process-wide logger, so this is for main to call once.
func RouteRedisLog(log *slog.Logger) {
	redis.SetLogger(redisLogger{log: log})
}
