package deadletter

import (
	"time"

	"github.com/resc-go/resc/internal/consumer"
)

// The dead-letter entry format lives in internal/consumer, so that the
// worker SDK writes it without importing this package; these names keep
// it where the service's packages find it.

// Entry is one entry of a dead-letter list (consumer.Entry).
type Entry = consumer.Entry

// NewEntry is consumer.NewEntry.
func NewEntry(event, queue, reason, replica string, at time.Time, attempts int) Entry {
	return consumer.NewEntry(event, queue, reason, replica, at, attempts)
}

// Parse is consumer.Parse.
func Parse(stored string) (*Entry, bool) { return consumer.Parse(stored) }

// Decode is consumer.Decode, for the tests of the writers.
func Decode(stored string) (*Entry, error) { return consumer.Decode(stored) }
