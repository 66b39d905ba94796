package inspect

import (
	"context"

	"github.com/resc-go/resc/deadletter"
	"github.com/resc-go/resc/internal/keyspace"
)

// MaxSearched bounds the entries a search of a dead-letter list reads (a
// DeadQuery with Where): the newest ones. A DeadPage says when the list
// was longer.
const MaxSearched = 100_000

// searchChunk is how many entries a search reads per round trip.
const searchChunk = 1000

// DeadQuery asks for a page of a dead-letter list, newest first: Limit
// entries (at least 1) after the Offset newest ones, of those Where
// accepts (nil: every entry).
type DeadQuery struct {
	Offset, Limit int64
	Where         func(deadletter.Record) bool
}

// DeadPage is a page of a dead-letter list.
type DeadPage struct {
	Queue, DeadList string
	// Length is the length of the list when it was read; Matched is how
	// many entries Where accepted (Length without Where).
	Length, Matched int64
	// Truncated is set when a search stopped after the MaxSearched newest
	// entries: Matched counts only those.
	Truncated bool
	// Records are the page's entries, newest first, with their positions
	// (1 is the oldest entry of the list).
	Records []deadletter.Record
}

// DeadPage reads a page of the dead-letter list of the watcher of queue.
// Without Where it reads only the page; with it, the list in chunks from
// the newest entry, up to MaxSearched entries. The chunks are read one
// after the other, not atomically: an entry pushed or removed meanwhile
// may shift the page by as much (positions stay those read).
func (in *Inspector) DeadPage(ctx context.Context, queue string, q DeadQuery) (*DeadPage, error) {
	if err := in.DeadQueue(ctx, queue); err != nil {
		return nil, err
	}
	q.Limit = max(q.Limit, 1)
	q.Offset = max(q.Offset, 0)
	p := &DeadPage{Queue: queue, DeadList: keyspace.DeadList(queue), Records: []deadletter.Record{}}
	if q.Where == nil {
		length, recs, err := deadletter.ReadRange(ctx, in.rdb, queue, q.Offset, q.Limit)
		if err != nil {
			return nil, err
		}
		p.Length, p.Matched = length, length
		for i := len(recs) - 1; i >= 0; i-- { // ReadRange gives oldest first
			p.Records = append(p.Records, recs[i])
		}
		return p, nil
	}
	for skip := int64(0); ; skip += searchChunk {
		if skip >= MaxSearched {
			p.Truncated = skip < p.Length
			break
		}
		length, recs, err := deadletter.ReadRange(ctx, in.rdb, queue, skip, min(searchChunk, MaxSearched-skip))
		if err != nil {
			return nil, err
		}
		p.Length = length
		for i := len(recs) - 1; i >= 0; i-- {
			if !q.Where(recs[i]) {
				continue
			}
			if p.Matched >= q.Offset && int64(len(p.Records)) < q.Limit {
				p.Records = append(p.Records, recs[i])
			}
			p.Matched++
		}
		if len(recs) < searchChunk {
			break
		}
	}
	return p, nil
}
