// Package keyspace names every Redis key resc-go reads or writes, one
// function each, with its Redis type. No other package builds a key name.
//
// User-visible keys derive from the configuration (input and taken queues,
// task queues and sets); internal bookkeeping lives under one prefix,
// default "resc:".
package keyspace

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
