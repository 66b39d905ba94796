package keyspace

// DelaySchedule holds the events of one input queue waiting out their
// replay delay or their next fetch attempt (ZSET: member "<tag>:<entry>",
// the entry being the event with the crash replay stamp it may carry
// (StampReplays), unique even for identical events, the tag holding no ':': "<replay time,
// Unix ms>-<n>" from recovery, "<time>-f<run>-<seq>" from a fetch retry;
// score the time the event is due, Unix ms): "<prefix>delayed:<input_queue>".
func DelaySchedule(prefix, inputQueue string) string {
	return prefix + "delayed:" + inputQueue
}

// FetchAttempts holds how many times the fetches of each event of one input
// queue failed after their retries (HASH: field the SHA1 hex of the event,
// value "<attempts> <last attempt, Unix ms>"), apart from the crash replay
// counts: "<prefix>fetch-attempts:<input_queue>".
func FetchAttempts(prefix, inputQueue string) string {
	return prefix + "fetch-attempts:" + inputQueue
}

// TraceContext holds the W3C traceparent of an item of a list (STRING, with
// an expiry): of a task in its queue, written with the task, and of an
// event in its input queue, written by whoever produced it (a worker, or a
// replica taking it first) so that its trace survives replays:
// "<prefix>trace:<list>:<item>".
func TraceContext(prefix, list, item string) string {
	return prefix + "trace:" + list + ":" + item
}
