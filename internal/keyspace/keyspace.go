// Package keyspace names every Redis key resc-go reads or writes, one
// function each, with its Redis type. No other package builds a key name.
//
// User-visible keys derive from the configuration (input and taken queues,
// task queues and sets); internal bookkeeping lives under one prefix,
// default "resc:".
package keyspace

import "strings"

// TakenList is the list (LIST) of events one replica has taken from an
// input queue and not yet committed: "<taken_queue>/<replica-id>".
func TakenList(takenQueue, replica string) string {
	return takenQueue + "/" + replica
}

// DeadList is the dead-letter list (LIST of JSON entries) of an input
// queue: "<input_queue>/dead".
func DeadList(inputQueue string) string {
	return inputQueue + "/dead"
}

// globEscaper escapes the characters special to Redis' glob-style
// patterns (SCAN MATCH, KEYS).
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)

// TakenListPattern is the SCAN MATCH pattern of the taken lists of a taken
// queue, "<taken_queue>/*" with the glob characters of the queue name
// escaped. It matches more than taken lists (see TakenListReplica).
func TakenListPattern(takenQueue string) string {
	return globEscaper.Replace(takenQueue) + "/*"
}

// TakenListReplica returns the replica id of key when key is a taken list
// "<taken_queue>/<replica-id>" of takenQueue: an id is not empty and has
// no '/' (a replica id never has one). A key of another watcher whose
// queue name starts with "<taken_queue>/" may pass too: callers exclude
// the queues of their configuration.
func TakenListReplica(takenQueue, key string) (replica string, ok bool) {
	id, ok := strings.CutPrefix(key, takenQueue+"/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}
