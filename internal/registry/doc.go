// Package registry is the registration of a replica or of a worker of the
// SDK: the one protocol by which the leader tells live consumers from
// dead ones. It links none of the service (no leader election, no
// configuration loader), so that a worker program registers without them;
// package membership builds the replicas' membership and the elector on
// it.
//
// Register claims an id: one script (register.lua) sets the liveness key
// "<prefix>replica:<id>" to a random token with a TTL of DeadAfter, writes
// the Info beside it with the same TTL (JSON: id, host, pid, version,
// started, taken_lists, kind "worker" for a worker, dead_after_ns), adds
// the id to the registry "<prefix>replicas" and records the taken lists it
// owns in "<prefix>owners". A second live registration of the same id is
// refused with ErrIDInUse. Membership.Run renews both TTLs every
// HeartbeatInterval (heartbeat.lua), only while the key still holds its
// token; Deregister removes it all (deregister.lua). On Redis Cluster the
// prefix is keyspace.SharedPrefix's ("{resc:}" for "resc:"): every
// registry key in one slot.
//
// Membership.Lease is a context that is live while the registration may
// work. It is cancelled, with a cause wrapping ErrLeaseLost, as soon as a
// heartbeat finds the key gone or holding another token, or no renewal
// has succeeded for DeadAfter - 2*HeartbeatInterval (Settings.LeaseFor),
// counted from the moment the last renewal that succeeded was sent: the
// lease ends at least two heartbeat intervals before anyone can see the
// registration dead. After a lost lease, Run registers again under a new
// token and starts a new lease (WaitLease).
package registry
