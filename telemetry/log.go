// Package telemetry sets up what an operator observes of a replica: its log
// (slog, level from RESC_LOG) and its HTTP endpoints (/healthz, /readyz,
// /debug/pprof/).
package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
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
