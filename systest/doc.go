// Package systest holds the system tests of resc-go: they run the resc
// binary as real processes (internal/proctest) against a real
// redis-server, and signal, pause and kill them. The chaos suite is here:
// clusters of replicas killed, stopped and restarted while events flow,
// each event's task checked to be made exactly once (`make chaos` runs its
// long form). The package has no code of its own beside this comment.
package systest
