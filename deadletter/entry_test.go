package deadletter

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestNewEntry: what the Go writer (package watcher) stores decodes
// strictly to the same entry, exact bytes included.
func TestNewEntry(t *testing.T) {
	at := time.Date(2026, 11, 23, 13, 0, 0, 0, time.FixedZone("CET", 3600))
	for _, ev := range []string{"acq/1", "", "\xff\xfe", "ok é ✓ 𝄞", "\x00\"\\/\n\t"} {
		e := NewEntry(ev, "in", "why", "r1", at, 2)
		got, err := Decode(e.JSON())
		if err != nil {
			t.Fatal(err)
		}
		// For invalid UTF-8, got.Event has the bytes JSON replaced; the
		// exact bytes are in EventBase64 (Record.Event, below).
		want := e
		want.Event = got.Event
		if *got != want || got.Time != "2026-11-23T12:00:00Z" || got.Attempts != 2 || utf8.ValidString(ev) && got.Event != ev {
			t.Errorf("%q: decoded %+v, want %+v", ev, *got, e)
		}
		if r := (Record{Stored: e.JSON(), Entry: got}); r.Event() != ev {
			t.Errorf("%q: Record.Event() = %q", ev, r.Event())
		}
	}
}

// TestDecodeRefuses: Decode is strict where Parse is lenient, so that a
// writer's test notices a field Entry does not know.
func TestDecodeRefuses(t *testing.T) {
	for _, tt := range []struct{ stored, why string }{
		{`{"event":"e","queue":"in","reason":"r","replica":"r1","time":"2026-11-23T10:58:47Z","later":1}`, "later"},
		{`{"event":"e","queue":"in","reason":"r","time":"2026-11-23T10:58:47Z"}`, `no "replica"`},
		{`{"event":"e","queue":"in","reason":"r","replica":"r1","time":"yesterday"}`, "time"},
		{`{"event":"e","event_base64":"!","queue":"in","reason":"r","replica":"r1","time":"2026-11-23T10:58:47Z"}`, "Parse refuses"},
		{`[1]`, "cannot unmarshal"},
	} {
		if _, err := Decode(tt.stored); err == nil || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("Decode(%s) = %v, want an error about %s", tt.stored, err, tt.why)
		}
	}
}
