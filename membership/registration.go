package membership

// The registration of a replica (its key, info, registry entry and taken
// lists, the heartbeat and the self-fencing lease) lives in
// internal/registry, which the worker SDK uses too without linking the
// elector; these names keep it where replicas find it.

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/registry"
)

type (
	// Membership is the registration of a replica (registry.Membership).
	Membership = registry.Membership
	// Info describes a replica in the registry (registry.Info).
	Info = registry.Info
	// IDInUseError is registry.IDInUseError.
	IDInUseError = registry.IDInUseError
)

// The outcomes of a registration (see package registry).
var (
	ErrIDInUse       = registry.ErrIDInUse
	ErrLeaseLost     = registry.ErrLeaseLost
	ErrStopped       = registry.ErrStopped
	ErrNotRegistered = registry.ErrNotRegistered
	ErrWrongType     = registry.ErrWrongType
)

// Register registers this replica under info.ID with opts.Settings'
// timings: registry.Register, whose doc tells the guarantees.
func Register(ctx context.Context, rdb redis.Scripter, info Info, opts Options) (*Membership, error) {
	return registry.Register(ctx, rdb, info, registry.Options{
		Settings: opts.Settings.Registry(), Dialect: opts.Dialect, Logger: opts.Logger,
		WaitForExpiry: opts.WaitForExpiry, Now: opts.Now,
	})
}
