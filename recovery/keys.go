package recovery

// Key names of package recovery not yet in internal/keyspace (they will move
// there). Both live under the internal prefix.

// replayCounts holds the crash replay counts of the events of one input
// queue (HASH: field the SHA1 hex of the event text, value
// "<count> <last replay, Unix ms> <pass tag>"), with a TTL of
// Settings.CountTTL refreshed by every replay: "<prefix>replays:<input_queue>".
func replayCounts(prefix, inputQueue string) string {
	return prefix + "replays:" + inputQueue
}

// delaySchedule holds the events of one input queue waiting out their
// replay delay (ZSET: member "<replay time, Unix ms>-<n>:<event>", unique
// even for identical events; score the time the event is due, Unix ms):
// "<prefix>delayed:<input_queue>".
func delaySchedule(prefix, inputQueue string) string {
	return prefix + "delayed:" + inputQueue
}
