package loadtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/fetch"
	"github.com/resc-go/resc/rules"
)

// baseline re-enacts the algorithm of Canop/resc, the Rust program resc-go
// succeeds, so that each report can say how resc-go compares with it on the
// same machine, the same Redis and the same events. The command sequence
// is that of Watcher::watch_input_queue and Watcher::handle_input_event in
// Canop/resc src/watcher.rs (commit ff39e5ac3c4d and later): one
// connection per watcher, one event at a time, every command a round trip:
//
//	BRPOPLPUSH input taken 0             take one event
//	for each task the matching rules make (fetching first, one GET after
//	the other, when the rule has fetchers):
//	    ZSCORE set task                  only when the make entry has a set;
//	                                     a score means already queued: skip
//	    ZADD set now task                only when it has a set
//	    LPUSH queue task
//	    PUBLISH channel "<taken> TRIGGER <event> -> <task>"
//	LREM taken 1 event
//	PUBLISH channel "<taken> DONE <event>"
//
// resc cannot turn the listener channel off (listener_channel is required
// and always published to), so the baseline always publishes, to nobody
// unless the listener observer subscribes. BRPOPLPUSH waits 1 s instead of
// forever so that the baseline can stop. The rules are resc-go's own
// (package rules) on the same configuration, so the difference measured
// is the algorithm's: round trips and their sequence.
type baseline struct {
	rdb   *redis.Client // one connection
	k     keys
	rules *rules.Ruleset
	fetch *fetch.Client
	done  chan struct{}
	err   error
}

// newBaseline loads the rules of the configuration at path and connects
// to redisURL with a single connection.
func newBaseline(path, redisURL string, k keys) (*baseline, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("loadtest: baseline configuration: %w", err)
	}
	rs, problems := rules.Compile(path, cfg.Watchers[0])
	if len(problems) > 0 {
		return nil, fmt.Errorf("loadtest: baseline rules: %w", problems)
	}
	once := cfg.Fetch
	once.Retries, once.BreakerFailures = 0, 0
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("loadtest: baseline: %w", err)
	}
	opts.PoolSize, opts.MinIdleConns, opts.MaxRetries = 1, 1, -1
	return &baseline{rdb: redis.NewClient(opts), k: k, rules: rs, fetch: fetch.New(fetch.Options{Settings: once}), done: make(chan struct{})}, nil
}

// run handles events until ctx is done; an error of Redis stops it (resc's
// watcher stops on a failed command too).
func (b *baseline) run(ctx context.Context) {
	defer close(b.done)
	for ctx.Err() == nil {
		//lint:ignore SA1019 resc's own command, re-enacted on purpose (BLMOVE is the same on the server)
		ev, err := b.rdb.BRPopLPush(ctx, b.k.input, b.k.taken, time.Second).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err == nil {
			err = b.handle(ctx, ev)
		}
		if err != nil {
			if ctx.Err() == nil {
				b.err = fmt.Errorf("loadtest: baseline: %w", err)
			}
			return
		}
	}
}

func (b *baseline) handle(ctx context.Context, ev string) error {
	now := float64(time.Now().Unix())
	var tasks []rules.Task
	for _, m := range b.rules.Match(ev) {
		var results [][]map[string]string
		if m.Rule().HasFetch() {
			var err error
			if results, err = b.fetchAll(ctx, &m); err != nil {
				continue // resc: "Rule execution failed", the rule makes nothing
			}
		}
		tasks = m.Make(results, tasks)
	}
	for _, t := range tasks {
		if t.HasSet {
			if err := b.rdb.ZScore(ctx, t.Set, t.Task).Err(); err == nil {
				continue // already queued
			}
			if err := b.rdb.ZAdd(ctx, t.Set, redis.Z{Score: now, Member: t.Task}).Err(); err != nil {
				return err
			}
		}
		if err := b.rdb.LPush(ctx, t.Queue, t.Task).Err(); err != nil {
			return err
		}
		if err := b.rdb.Publish(ctx, b.k.channel, b.k.taken+" TRIGGER "+ev+" -> "+t.Task).Err(); err != nil {
			return err
		}
	}
	if err := b.rdb.LRem(ctx, b.k.taken, 1, ev).Err(); err != nil {
		return err
	}
	return b.rdb.Publish(ctx, b.k.channel, b.k.taken+" DONE "+ev).Err()
}

// fetchAll GETs each fetcher's URL in turn, as resc did, and returns the
// results. The body is read by resc-go's fetch client with no retry and no
// breaker (resc had neither): a JSON object or an array of objects whose
// string and number properties are the results.
func (b *baseline) fetchAll(ctx context.Context, m *rules.Match) ([][]map[string]string, error) {
	reqs, err := m.FetchRequests()
	if err != nil {
		return nil, err
	}
	results := make([][]map[string]string, len(reqs))
	for i, r := range reqs {
		if results[i], err = b.fetch.Fetch(ctx, r.URL, nil); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// wait waits for run to end, closes the connection and returns run's error.
func (b *baseline) wait() error {
	<-b.done
	return errors.Join(b.err, b.rdb.Close())
}
