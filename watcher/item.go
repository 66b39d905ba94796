package watcher

import (
	"strconv"

	"github.com/resc-go/resc/rules"
)

// item is one taken event on its way to its commit.
type item struct {
	// event is the event the rules see; entry is it as the taken list
	// holds it, with the crash replay stamp it may carry
	// (keyspace.StampReplays): the commit's fence (LREM) and a hand-back
	// use entry, so that the count stays with the occurrence. An entry ""
	// stands for the event itself.
	event, entry string
	tasks        []rules.Task
	// outcome is what its commit does with it, reason why when it is not
	// outcomeCommit.
	outcome outcome
	reason  string
	// fetched: it matched a rule with fetches, so it may have fetch
	// attempts in Redis for its commit to forget.
	fetched bool
	// attempts is how many times its fetch was attempted, when that is why
	// it is dead-lettered.
	attempts int
	// trace is the event's trace; nil when not traced.
	trace *eventTrace
	// scriptErrors counts the commit script's own errors on this event.
	scriptErrors int
	// outage is set by a commit that failed on this event because Redis
	// could not answer (commit.lua's code 10 with an outage error).
	outage error
	// seq is the order in which this replica took the event.
	seq uint64
	// aside is set for an event set aside for its size (take.lua): event
	// then holds only its first bytes.
	aside *setAside
}

// setAside is where take.lua put an event longer than max_event_bytes.
type setAside struct {
	size  int64
	field string
}

// outcome is what the commit of an item does with its event.
type outcome uint8

const (
	// outcomeCommit pushes its tasks (none when no rule matched).
	outcomeCommit outcome = iota
	// outcomeRetry schedules it again: its fetch failed (the reason) after
	// the fetch client's retries; past the last attempt it is dead-lettered.
	outcomeRetry
	// outcomeRetryBusy schedules it again without counting an attempt: its
	// fetch's host had no free slot (the reason).
	outcomeRetryBusy
	// outcomeDead sends it to the dead-letter list with the reason.
	outcomeDead
	// outcomeHandBack hands it back to the input queue: it could not be
	// finished before the drain timeout.
	outcomeHandBack
)

func (o outcome) String() string {
	switch o {
	case outcomeCommit:
		return "commit"
	case outcomeRetry:
		return "retry"
	case outcomeRetryBusy:
		return "retry (host busy)"
	case outcomeDead:
		return "dead-letter"
	case outcomeHandBack:
		return "hand back"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// raw returns it's entry in the taken list.
func (it *item) raw() string {
	if it.entry == "" {
		return it.event
	}
	return it.entry
}

// deadLetter makes it go to the dead-letter list for reason.
func (it *item) deadLetter(reason string) {
	it.outcome, it.reason = outcomeDead, reason
}

// short shortens an event for a log line: events can be megabytes.
func short(ev string) string {
	const limit = 200
	if len(ev) <= limit {
		return ev
	}
	return ev[:limit] + "…(" + strconv.Itoa(len(ev)) + " bytes)"
}
