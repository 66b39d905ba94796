package watcher

// taskLogMsg is the info line of the i-th task of an event committed with
// n tasks pushed and deduped skipped by their set; detail is commit.lua's
// per-task detail ('1' pushed, '0' skipped), when it was asked for (or
// set for a single task). "-> task" says a task was pushed, and only then.
func taskLogMsg(detail string, i int, n, deduped int64) string {
	pushed := deduped == 0
	switch {
	case i < len(detail):
		pushed = detail[i] == '1'
	case n > 0 && deduped > 0:
		// Several tasks, some skipped, and no per-task detail asked
		// (neither metrics nor tracing): which is not known.
		return "task pushed or deduplicated (see event done)"
	}
	if pushed {
		return "-> task"
	}
	return "task deduplicated: already in its set, not pushed"
}
