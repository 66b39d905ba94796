package replica

import (
	"log/slog"
	"time"
)

// startWaitRepeat is how often a start that keeps waiting says so again.
const startWaitRepeat = 10 * time.Second

// startWait logs a replica's start waiting for Redis: the first failure at
// error level, then a reminder every startWaitRepeat with how long it has
// waited, and the end of the wait. A start that waits is never silent, and
// never floods the log either.
type startWait struct {
	log         *slog.Logger
	step        string
	since, told time.Time
	failures    int
	now         func() time.Time
}

func newStartWait(log *slog.Logger, step string) *startWait {
	return &startWait{log: log, step: step, now: time.Now}
}

// fail records a failure that is waited out.
func (w *startWait) fail(err error) {
	now := w.now()
	w.failures++
	switch {
	case w.failures == 1:
		w.since, w.told = now, now
		w.log.Error("waiting for Redis before starting: "+w.step+" failed; retrying with backoff", "err", err)
	case now.Sub(w.told) >= startWaitRepeat:
		w.told = now
		w.log.Error("still waiting for Redis before starting: "+w.step+" failed; retrying with backoff", "err", err,
			"waiting_for", now.Sub(w.since).Round(time.Second), "failures", w.failures)
	}
}

// ok records the success that ends the wait.
func (w *startWait) ok() {
	if w.failures > 0 {
		w.log.Warn("Redis answered: "+w.step+" succeeded after waiting", "waited", w.now().Sub(w.since).Round(time.Millisecond), "failures", w.failures)
	}
}
