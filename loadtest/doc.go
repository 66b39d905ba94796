// Package loadtest is resc-go's load generator, run by the command
// loadtest/cmd/resc-load: it starts a private redis-server (or targets one
// and touches only its own keys), runs N real resc processes on a
// configuration it writes, pushes events, and reports throughput,
// push-to-task latency, replica memory, the same measurement of resc's own
// algorithm (the baseline, baseline.go) and the verdict of an exactly-once
// checker. The k6 scripts beside it (k6/) push through k6's built-in Redis
// module; Run's k6 mode runs them and checks their tasks.
//
// What is measured and how, and what each figure means, is in
// docs/loadtest.md. Guarantees: a run deletes every key it wrote (all under
// "lt/<run id>/") and never flushes a server; the replicas it starts are
// stopped (SIGTERM, then SIGKILL after a timeout) whatever happens.
// Non-guarantees: the figures are those of the machine the generator
// shares with Redis and the replicas.
package loadtest
