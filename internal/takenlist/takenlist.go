// Package takenlist finds the taken lists of a configuration's watchers in
// Redis: the lists "<taken_queue>/<replica-id>" each replica takes its
// events into. It is the one discovery that the leader's recovery, `resc
// status` (package inspect) and the load generator's final check share.
//
// Discovery is a SCAN of the pattern keyspace.TakenListPattern, keeping
// the keys of type list whose name is "<taken_queue>/<id>" with an id
// without '/', and leaving out the queues of the configuration itself
// (another watcher's input queue, taken queue or dead-letter list may be
// named like a taken list: "in/taken/x" is the input queue of a watcher
// when the configuration says so, and never a taken list).
package takenlist

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/keyspace"
)

// Queues are the queues of one watcher.
type Queues struct {
	InputQueue string
	// TakenQueue is the taken_queue; "" means "<input_queue>/taken".
	TakenQueue string
}

// List is a taken list found, with the id of its replica.
type List struct {
	Key     string
	Replica string
}

// Scanner is what Finder needs of a go-redis client.
type Scanner interface {
	ScanType(ctx context.Context, cursor uint64, match string, count int64, keyType string) *redis.ScanCmd
}

// Finder finds the taken lists of the watchers it was made with. Create it
// with New; it is safe for concurrent use.
type Finder struct {
	excluded map[string]bool
}

// scanCount is the COUNT hint of each SCAN call.
const scanCount = 1000

// New returns the finder of the taken lists of watchers: the queues of all
// of them are excluded from the taken lists of each.
func New(watchers []Queues) *Finder {
	f := &Finder{excluded: make(map[string]bool, 3*len(watchers))}
	for _, w := range watchers {
		f.excluded[w.InputQueue] = true
		f.excluded[TakenQueue(w)] = true
		f.excluded[keyspace.DeadList(w.InputQueue)] = true
	}
	return f
}

// TakenQueue is w's taken queue, its default applied.
func TakenQueue(w Queues) string {
	if w.TakenQueue == "" {
		return w.InputQueue + "/taken"
	}
	return w.TakenQueue
}

// Find returns the taken lists of takenQueue, sorted by key. A list that
// appears or disappears during the scan may be missed or reported; a
// caller that acts on one must be fenced (the recovery's scripts are).
//
// On a Redis Cluster (a client with MasterForKey) only the master holding
// the slot of takenQueue's lists is scanned: they share the watcher's hash
// tag (config.ClusterProblems), so no other node can hold one.
func (f *Finder) Find(ctx context.Context, rdb Scanner, takenQueue string) ([]List, error) {
	if c, ok := rdb.(interface {
		MasterForKey(context.Context, string) (*redis.Client, error)
	}); ok {
		node, err := c.MasterForKey(ctx, keyspace.TakenList(takenQueue, "x"))
		if err != nil {
			return nil, fmt.Errorf("finding the node of the taken lists of %q: %w", takenQueue, err)
		}
		rdb = node
	}
	var lists []List
	seen := map[string]bool{} // SCAN may return a key twice
	var cursor uint64
	for {
		keys, next, err := rdb.ScanType(ctx, cursor, keyspace.TakenListPattern(takenQueue), scanCount, "list").Result()
		if err != nil {
			return nil, fmt.Errorf("scanning the taken lists of %q: %w", takenQueue, err)
		}
		for _, k := range keys {
			id, ok := keyspace.TakenListReplica(takenQueue, k)
			if !ok || f.excluded[k] || seen[k] {
				continue
			}
			seen[k] = true
			lists = append(lists, List{Key: k, Replica: id})
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	slices.SortFunc(lists, func(a, b List) int { return strings.Compare(a.Key, b.Key) })
	return lists, nil
}
