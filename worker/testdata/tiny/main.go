// Command tiny is the smallest worker program: what a user of the SDK
// links (worker's TestDependencies lists its dependencies).
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	w, err := worker.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"}), worker.Options{})
	if err != nil {
		panic(err)
	}
	if err := w.Handle("todo", func(context.Context, worker.Task) error { return nil }); err != nil {
		panic(err)
	}
	if err := w.Run(ctx); err != nil {
		panic(err)
	}
}
