package keyspace

import (
	"context"
	"strings"
)

// Keys of the cluster layer (package cluster): the replica registry, the
// heartbeats and the leader lock. They all live under the internal prefix
// (config.DefaultKeyPrefix, "resc:", unless key_prefix says otherwise). On
// Redis Cluster, a prefix with a hash tag (e.g. "{resc}:") keeps them in
// one slot, which the registry scripts need.

// Replica is a replica's liveness key (STRING holding the random token of
// the registration that owns the id, with a TTL of dead-after renewed by
// every heartbeat): "<prefix>replica:<id>". The replica is alive exactly as
// long as this key exists; no clock is compared.
func Replica(prefix, id string) string {
	return prefix + "replica:" + id
}

// ReplicaInfo is a replica's description (STRING holding a JSON object:
// id, host, pid, version, start time, taken lists), with the same TTL as
// its Replica key: "<prefix>replica-info:<id>".
func ReplicaInfo(prefix, id string) string {
	return prefix + "replica-info:" + id
}

// Replicas is the registry (ZSET of replica ids, scored by their latest
// registration time in Unix seconds): "<prefix>replicas". A member whose
// Replica key has expired is a dead replica not yet cleaned up.
func Replicas(prefix string) string {
	return prefix + "replicas"
}

// Owners maps taken lists to the replica that registered them (HASH, field
// the taken list, value the replica id): "<prefix>owners". A taken list
// whose owner is dead belongs to a replica that died; a taken list absent
// from it belongs to a replica that never registered.
func Owners(prefix string) string {
	return prefix + "owners"
}

// DeadSince records when the leader first found each dead registry
// entry dead (HASH, field the replica id, value Unix milliseconds of the
// leader's clock): "<prefix>dead-since". The entry is removed from the
// registry once it has been dead for the retention period; the field goes
// with it, or when the id is found alive again.
func DeadSince(prefix string) string {
	return prefix + "dead-since"
}

// Leader is the leader lock (STRING, a redsync mutex holding
// "<replica-id>#<random>", with a TTL of the leader lock TTL):
// "<prefix>leader".
func Leader(prefix string) string {
	return prefix + "leader"
}

// ReplicaCounters are a replica's counters since it started (STRING
// holding a JSON object, membership.Counters), written every few seconds
// with a TTL of a minute, read by the operators' console:
// "<prefix>replica-counters:<id>".
func ReplicaCounters(prefix, id string) string {
	return prefix + "replica-counters:" + id
}

// clusterClient is met by go-redis's *redis.ClusterClient and not by its
// other clients; keyspace imports no client package.
type clusterClient interface{ ReloadState(context.Context) }

// OnCluster tells whether rdb is a Redis Cluster client.
func OnCluster(rdb any) bool {
	_, ok := rdb.(clusterClient)
	return ok
}

// SharedPrefix is the prefix of the keys every replica and worker shares
// (registry, liveness, leader lock, counters, worker queues) on the client
// rdb: the configured prefix, except on a Redis Cluster, where the
// registry scripts need all of them in one slot: there a prefix without a
// hash tag is wrapped into one, "resc:" giving "{resc:}" (keys such as
// "{resc:}replicas"). The internal keys of each watcher keep the plain
// prefix, so that they follow the watcher's own tag.
func SharedPrefix(rdb any, prefix string) string {
	if OnCluster(rdb) && !strings.Contains(prefix, "{") {
		return "{" + prefix + "}"
	}
	return prefix
}
