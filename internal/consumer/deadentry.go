package consumer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// Entry is one entry of a dead-letter list "<input_queue>/dead", stored as
// JSON. Every writer writes these fields and no other: package watcher
// (NewEntry) and recovery's replay.lua, whose test decodes what it writes
// with Decode.
type Entry struct {
	// Event is the event. When it is not valid UTF-8, JSON cannot hold it
	// as it is: Event then has the invalid bytes replaced and EventBase64
	// holds the exact bytes.
	Event       string `json:"event"`
	EventBase64 string `json:"event_base64,omitempty"`
	// Queue is the input queue the event came from.
	Queue string `json:"queue"`
	// Reason says why the event could not be handled.
	Reason string `json:"reason"`
	// Replica is the replica that gave up on the event.
	Replica string `json:"replica"`
	// Time is when, in RFC 3339 UTC, to the second.
	Time string `json:"time"`
	// Attempts is, for an event whose fetch kept failing, how many times it
	// was attempted (package watcher); 0 otherwise.
	Attempts int `json:"attempts,omitempty"`
	// Count is the number of crash replays made, in the entries of a
	// poison event (package recovery); nil in the others.
	Count *int `json:"count,omitempty"`
	// EventBytes, EventKey and EventField are set for an event longer than
	// max_event_bytes (package watcher): its size, and the hash and field
	// its exact bytes were set aside in; Event then holds only its first
	// bytes (as valid UTF-8), and EventBase64 is empty.
	EventBytes int64  `json:"event_bytes,omitempty"`
	EventKey   string `json:"event_key,omitempty"`
	EventField string `json:"event_field,omitempty"`
	// TraceID is the OpenTelemetry trace (32 hex digits) of the attempt
	// that gave up, when it was traced (package watcher); empty otherwise.
	TraceID string `json:"trace_id,omitempty"`
}

// NewEntry is the entry of event, given up on by replica at time at for
// reason, after attempts fetch attempts (0: none counted). An event that
// is not valid UTF-8 gets its exact bytes in EventBase64; its Event keeps
// them too, which JSON stores with each invalid byte replaced by U+FFFD.
func NewEntry(event, queue, reason, replica string, at time.Time, attempts int) Entry {
	e := Entry{Event: event, Queue: queue, Reason: reason, Replica: replica, Time: at.UTC().Format(time.RFC3339), Attempts: attempts}
	if !utf8.ValidString(event) {
		e.EventBase64 = base64.StdEncoding.EncodeToString([]byte(event))
	}
	return e
}

// SetAside reports whether e is the entry of an event set aside for its
// size: its bytes are in field EventField of hash EventKey.
func (e *Entry) SetAside() bool { return e.EventKey != "" }

// JSON is e as it is stored.
func (e Entry) JSON() string {
	b, err := json.Marshal(e)
	if err != nil { // cannot happen: strings and integers only
		panic(err)
	}
	return string(b)
}

// Parse reads a stored entry. It reports false when stored is not a
// dead-letter entry: not a JSON object, no string "event", a field of
// another type, or an event_base64 that is not base64. Unknown fields are
// ignored (an entry written by a later version).
func Parse(stored string) (*Entry, bool) {
	var e struct {
		Entry
		Event *string `json:"event"`
	}
	if err := json.Unmarshal([]byte(stored), &e); err != nil || e.Event == nil {
		return nil, false
	}
	e.Entry.Event = *e.Event
	if e.EventBase64 != "" {
		if _, err := base64.StdEncoding.DecodeString(e.EventBase64); err != nil {
			return nil, false
		}
	}
	return &e.Entry, true
}

// Decode is Parse for the tests of the writers: it also refuses a field
// Entry does not have, a missing field that every entry has, and a value
// Parse would not accept, saying why.
func Decode(stored string) (*Entry, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(stored)))
	dec.DisallowUnknownFields()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stored), &fields); err != nil {
		return nil, fmt.Errorf("dead-letter entry %q: %w", stored, err)
	}
	for _, f := range []string{"event", "queue", "reason", "replica", "time"} {
		if _, ok := fields[f]; !ok {
			return nil, fmt.Errorf("dead-letter entry %q: no %q", stored, f)
		}
	}
	var e Entry
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("dead-letter entry %q: %w", stored, err)
	}
	if _, err := time.Parse(time.RFC3339, e.Time); err != nil {
		return nil, fmt.Errorf("dead-letter entry %q: time: %w", stored, err)
	}
	if _, ok := Parse(stored); !ok {
		return nil, fmt.Errorf("dead-letter entry %q: Parse refuses it", stored)
	}
	return &e, nil
}
