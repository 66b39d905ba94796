// Package worker is resc-go's worker SDK: it consumes the task queues that
// resc-go fills, with the reliable-consumer protocol of docs/workers.md.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
//	w, err := worker.New(rdb, worker.Options{Concurrency: 20}) // bad options: an error here
//	if err != nil { ... }
//	err = w.Handle("trt/todo", func(ctx context.Context, t worker.Task) error {
//		return treat(ctx, t.Body) // nil: done event pushed; an error: retried, then dead-lettered
//	}, worker.WithSet("trt/todo-set"), worker.WithDone("global/done"))
//	if err != nil { ... } // a bad queue: an error here
//	err = w.Run(ctx) // registers, takes, handles; on ctx done drains, hands back, deregisters
//
// # Guarantees
//
// A task is always in exactly one of its queue, this worker's taken list
// "<queue>/taken/<id>", the delay schedule, the dead-letter list, or
// completed. A worker that dies (its registration expires) has its taken
// lists replayed by the resc-go leader; a worker restarted under the same
// id replays them itself. A completion pushes the done event once, and
// only while the worker's fence on the queue holds its registration's
// token and the task is still in its taken list: a worker paused past
// dead-after completes nothing of what was replayed meanwhile.
//
// # Non-guarantees
//
// Handlers run at least once: a task whose worker died after the work and
// before the completion is handled again. A handler's context is
// cancelled when the worker must stop (lost lease or fence, or the drain
// timeout); what it returns then is ignored. Failure counts are per task
// text.
//
// A program that imports only this package links none of the service
// (no leader election, no configuration loader): a test checks it.
package worker
