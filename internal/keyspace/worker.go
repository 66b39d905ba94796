package keyspace

// Keys of the worker SDK (package worker). A worker registers in the same
// registry as the replicas (Replica, ReplicaInfo, Replicas, Owners), with
// kind "worker" in its info, so that the leader tells live workers from
// dead ones as it does replicas.

// WorkerTakenQueue is the base of the taken lists of the workers of a task
// queue: "<queue>/taken", as a watcher's default taken_queue is for its
// input queue.
func WorkerTakenQueue(queue string) string {
	return queue + "/taken"
}

// WorkerTakenList is the list (LIST) of tasks one worker has taken from a
// task queue and not yet completed: "<queue>/taken/<worker-id>".
func WorkerTakenList(queue, worker string) string {
	return TakenList(WorkerTakenQueue(queue), worker)
}

// WorkerFence is the fence of one worker on one task queue (STRING: the
// token of the worker's registration, with a TTL refreshed while it
// works): the worker's scripts on that queue write only while it holds
// their token, and the leader deletes it in the script that replays the
// worker's taken list of the queue. It is in the queue's slot (the
// queue's hash tag comes first when the prefix has none), unlike the
// registration, so that on a Redis Cluster every worker script stays on
// one node: "<prefix>worker-fence:<queue>/<worker-id>".
func WorkerFence(prefix, queue, worker string) string {
	return prefix + "worker-fence:" + queue + "/" + worker
}

// WorkerQueues lists the task queues that workers of the SDK consume
// (HASH: field the queue, value the Unix time in seconds of the latest
// worker start on it), so that the leader knows whose taken lists to look
// for: "<prefix>worker-queues". A retired queue may be removed with HDEL.
func WorkerQueues(prefix string) string {
	return prefix + "worker-queues"
}

// TaskFailures holds how many times the handlers of the tasks of one queue
// failed (HASH: field the SHA1 hex of the task, value the count), apart
// from the crash replay counts; a task's field is removed when it
// completes or is dead-lettered: "<prefix>task-failures:<queue>".
func TaskFailures(prefix, queue string) string {
	return prefix + "task-failures:" + queue
}
