// Package cluster keeps the replicas of a resc-go deployment aware of each
// other: a registry of live replicas with heartbeats, a self-fencing lease
// per replica, and a leader elected with a redsync mutex.
//
// # Registry and heartbeats
//
// Register claims a replica id: one script sets the replica key
// "<prefix>replica:<id>" to a random token with a TTL of DeadAfter, writes
// the replica's Info beside it with the same TTL, adds the id to the
// registry "<prefix>replicas" and records the taken lists it owns in
// "<prefix>owners" (see package keyspace). A second live replica with the
// same id is refused with ErrIDInUse. Membership.Run then renews both TTLs
// every HeartbeatInterval, only while the key still holds its token.
//
// A replica is alive exactly as long as its key exists (Liveness.Alive,
// Replicas). Liveness is decided by the Redis server's expiry alone: no
// replica compares its clock with another's.
//
// # Self-fencing
//
// Membership.Lease is a context that is live while this replica may work.
// It is cancelled, with a cause wrapping ErrLeaseLost, as soon as
//
//   - a heartbeat finds the key gone or holding another token, or
//   - no renewal has succeeded for DeadAfter - 2*HeartbeatInterval, counted
//     on this process's monotonic clock from the moment the last renewal
//     that succeeded was sent.
//
// Redis sets the key's TTL when it runs the renewal, which is after it was
// sent: the key lives at least DeadAfter past the send time, so the lease
// ends at least two heartbeat intervals before any other replica can see
// this one dead. After a lost lease, Run registers again (a new token,
// a new lease) as soon as Redis answers; callers restart their work on the
// new lease (WaitLease).
//
// # Leader
//
// Elector.Run takes part in the election of one leader through the redsync
// mutex "<prefix>leader" (expiry LeaderTTL, extended every LeaderTTL/3) and
// runs a callback with a leadership context while it leads. That context is
// cancelled the moment an extend fails or is refused, when the lock's
// validity runs out before an extend succeeds, or when Run's context is
// done. The lock is then released (with a fresh, bounded context) so that
// another replica can lead at once.
//
// # Guarantees and non-guarantees
//
// Guaranteed, for one Redis primary that does not lose acknowledged writes
// and whose clock does not jump (Redis expires keys by its wall clock):
// an id has at most one live registration; a replica's lease ends before
// its key can expire, provided its own process is scheduled (a timer cannot
// fire in a paused process); at most one elector holds the lock at a time,
// as seen by Redis.
//
// Not guaranteed: two leaders can briefly coexist. A leader paused (GC,
// SIGSTOP, a slow host) past its lock's expiry keeps running until its
// timers fire on wake-up, while another already leads; and a failover to a
// replica that missed the last writes can hand out the lock twice. The lock
// gives no fencing token. Leader-only work must therefore be safe when two
// leaders run it at once: the recovery scripts are fenced by design (they
// check in Redis, atomically, that the replica whose list they replay is
// dead, and move each entry once). Likewise a paused replica may work for a
// moment after its lease should have ended; the watcher's fenced commit
// makes that harmless.
package membership
