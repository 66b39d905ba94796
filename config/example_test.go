package config_test

import (
	"fmt"

	"github.com/resc-go/resc/config"
)

func ExampleLoad() {
	c, err := config.Load("testdata/example.hjson")
	if err != nil {
		fmt.Println(err) // every problem, one per line
		return
	}
	w := c.Watchers[0]
	r := w.Rules[0]
	fmt.Println("redis:", c.RedisURL)
	fmt.Println("key prefix:", c.KeyPrefix)
	fmt.Println("watch:", w.InputQueue, "taking into", w.TakenQueue+"/<replica-id>")
	fmt.Println("concurrency:", w.Concurrency, "batch size:", w.BatchSize)
	fmt.Printf("rule %q on %s\n", r.Name, r.On)
	for _, m := range r.Make {
		fmt.Printf("  push %s to %s, deduplicated by %s\n", m.Task, m.Queue, m.Set)
	}
	// Output:
	// redis: redis://127.0.0.1:6379/
	// key prefix: resc:
	// watch: global/done taking into global/done/taken/<replica-id>
	// concurrency: 32 batch size: 256
	// rule "thumbnail" on ^image/(?P<id>\w+)$
	//   push thumb/${id} to thumb/todo, deduplicated by thumb/todo-set
}
