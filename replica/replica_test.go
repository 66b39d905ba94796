package replica

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/rules"
)

// TestNewAcceptsWhatConfigAccepts: every cluster timing package config
// accepts, New accepts too, so that `resc check` saying ok means `resc run`
// starts. The grid walks both sides of each bound (a heartbeat of half
// dead_after, one millisecond below, the defaults, the smallest values).
// New's own check of the timings is a guard for code that builds a Config
// by hand; reaching it from a file would be a bug.
func TestNewAcceptsWhatConfigAccepts(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled: New does no I/O
	t.Cleanup(func() { rdb.Close() })
	values := []int{1, 2, 3, 4, 5, 499, 500, 501, 999, 1000, 1001, 1999, 2000, 2001, 2499, 2500, 2501, 4999, 5000, 5001, 10000}
	accepted := 0
	for _, hb := range append(values, 0) {
		for _, dead := range append(values, 0) {
			for _, leader := range []int{0, 1, 400, 4000} {
				cluster := ""
				for key, v := range map[string]int{"heartbeat_interval_ms": hb, "dead_after_ms": dead, "leader_ttl_ms": leader} {
					if v != 0 { // 0: the key is left out
						cluster += fmt.Sprintf("%s: %d, ", key, v)
					}
				}
				file := fmt.Sprintf(`{redis: {url: "redis://127.0.0.1:1/"}, cluster: {%s}, watchers: [{input_queue: "in", rules: [{on: "^a$", make: {queue: "q"}}]}]}`, cluster)
				cfg, err := config.LoadBytes("c.hjson", []byte(file))
				if err != nil {
					continue // refused by config: check reports it, run never gets here
				}
				accepted++
				rs, ps := rules.Compile(cfg.Path, cfg.Watchers[0])
				if len(ps) > 0 {
					t.Fatal(ps)
				}
				if _, err := New(Options{ID: "r", Config: cfg, Rules: []*rules.Ruleset{rs}, Redis: rdb}); err != nil {
					t.Errorf("cluster {%s}: config accepts it, New refuses: %v", cluster, err)
				}
			}
		}
	}
	if accepted == 0 {
		t.Fatal("config accepted no combination: the grid tests nothing")
	}
}
