package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/worker"
)

// New reports every problem of the options at once, before any Redis
// command is sent.
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	_, err := worker.New(rdb, worker.Options{ID: "a/b", Block: 1500 * time.Millisecond})
	fmt.Println(err)
	// Output:
	// worker: id "a/b": at most 200 bytes, no '/', spaces or control characters
	// worker: Block is 1.5s: it must be a whole number of seconds, at least 1s (zero means the default)
}

// Handle reports a mistake where the queue is added.
func ExampleWorker_Handle() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	w, err := worker.New(rdb, worker.Options{ID: "w1"})
	if err != nil {
		log.Fatal(err)
	}
	nop := func(context.Context, worker.Task) error { return nil }
	fmt.Println(w.Handle("trt/todo", nop, worker.WithDone("global/done")))
	fmt.Println(w.Handle("trt/todo", nop))
	fmt.Println(w.Handle("report/todo", nop, worker.WithDone("report/todo")))
	fmt.Println(w.TakenList("trt/todo"))
	// Output:
	// <nil>
	// worker: Handle("trt/todo") called twice
	// worker: queue "report/todo": the done queue cannot be the queue itself
	// trt/todo/taken/w1
}

// A handler returns Permanent(err) for a task that no retry can fix: it
// goes to the dead-letter list at once.
func ExamplePermanent() {
	err := worker.Permanent(errors.New("no such product"))
	fmt.Println(err, errors.Is(err, worker.ErrPermanent))
	// Output: permanent failure: no such product true
}

// A complete worker: it runs until SIGTERM, then drains, hands back what
// is left and deregisters. (Not run: it needs a Redis server.)
func ExampleWorker_Run() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	w, err := worker.New(rdb, worker.Options{Concurrency: 20})
	if err != nil {
		log.Fatal(err)
	}
	err = w.Handle("trt/todo", func(ctx context.Context, t worker.Task) error {
		log.Printf("treating %s (failed %d times before)", t.Body, t.Failures)
		return nil
	}, worker.WithSet("trt/todo-set"), worker.WithDone("global/done"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
