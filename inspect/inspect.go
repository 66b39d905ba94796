// Package inspect is the read model and the operations of a running
// deployment, for the operators' tools: `resc status` and `resc dead` use
// it, and so does the web console. It reads what the replicas leave in
// Redis (the registry, the leader lock, the queues, the taken lists, the
// dead-letter lists) and changes nothing but the dead-letter lists, through
// package deadletter's atomic scripts.
//
// An Inspector works for one configuration: its watchers say which queues
// to read, its key prefix where the internal keys are. It holds no state
// between calls: every call reads Redis afresh.
package inspect

import (
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/script"
	"github.com/resc-go/resc/internal/takenlist"
)

// Options tune an Inspector; the zero value is the default.
type Options struct {
	// Now is the clock of the uptimes. Default time.Now.
	Now func() time.Time
}

// Inspector reads and repairs the deployment of one configuration. Create
// it with New; it is safe for concurrent use.
type Inspector struct {
	rdb    redis.UniversalClient
	cfg    *config.Config
	finder *takenlist.Finder
	now    func() time.Time

	mu       sync.Mutex // guards dialect and detected
	dialect  script.Dialect
	detected bool
}

// New returns the inspector of the deployment of cfg (a loaded
// configuration) in the Redis of rdb.
func New(rdb redis.UniversalClient, cfg *config.Config, o Options) *Inspector {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Inspector{rdb: rdb, cfg: cfg, finder: takenlist.New(queues(cfg)), now: o.Now}
}

// queues are the queues of cfg's watchers, for package takenlist.
func queues(cfg *config.Config) []takenlist.Queues {
	qs := make([]takenlist.Queues, len(cfg.Watchers))
	for i, w := range cfg.Watchers {
		qs[i] = takenlist.Queues{InputQueue: w.InputQueue, TakenQueue: w.TakenQueue}
	}
	return qs
}

// Answered reports whether err is a reply of Redis (WRONGTYPE, a script's
// refusal...) rather than a failure to reach it: Redis answered, so
// retrying the same call will not help.
func Answered(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}
