package keyspace

// ReplayCounts holds the crash replay counts of the events of one input
// queue (HASH: field the SHA1 hex of the event text, value
// "<count> <last replay, Unix ms> <pass tag>"), with a TTL refreshed by
// every replay: "<prefix>replays:<input_queue>".
func ReplayCounts(prefix, inputQueue string) string {
	return prefix + "replays:" + inputQueue
}

// DelaySchedule holds the events of one input queue waiting out their
// replay delay (ZSET: member "<replay time, Unix ms>-<n>:<event>", unique
// even for identical events; score the time the event is due, Unix ms):
// "<prefix>delayed:<input_queue>".
func DelaySchedule(prefix, inputQueue string) string {
	return prefix + "delayed:" + inputQueue
}
