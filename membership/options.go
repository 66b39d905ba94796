package membership

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/resc-go/resc/internal/script"
)

// Options configure a Membership (Register) or an Elector (NewElector)
// beside its Redis client.
type Options struct {
	// Settings are the cluster timings and the key prefix; zero fields take
	// their defaults. Every replica of a cluster uses the same.
	Settings Settings

	// Dialect is the server's script dialect (script.Detect); Register
	// needs it.
	Dialect script.Dialect

	// Logger; nil means slog.Default(). The replica id is added.
	Logger *slog.Logger

	// MeterProvider receives the elector's gauge resc.leader (1 while this
	// replica leads, docs/telemetry.md); nil records none.
	MeterProvider metric.MeterProvider

	// WaitForExpiry (Register only) makes Register wait, when a live registration holds
	// the id, until that registration expires, for up to DeadAfter +
	// HeartbeatInterval; it then registers, or returns ErrIDInUse if the
	// holder is still renewing. For a replica restarted under the same id
	// after a crash, whose old key lives on for up to DeadAfter. False
	// (the default) refuses at once.
	WaitForExpiry bool

	// Now (Register only) is the clock of the registration time kept in
	// the registry. Default time.Now.
	Now func() time.Time
}
