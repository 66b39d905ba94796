package script

import (
	"context"
	"testing"

	"github.com/resc-go/resc/internal/keyspace"
)

var unstampScript = New("#!lua flags=no-writes\nlocal e, n = unstamp(ARGV[1])\nreturn {e, n, stamp(tonumber(ARGV[2]), ARGV[1])}\n", ReplayStamp)

// TestReplayStamp checks that the Lua prelude and package keyspace read
// and write the same stamps, on a real redis-server and the embedded
// server: well-formed stamps, entries that only look like one, and
// events with NULs and invalid UTF-8.
func TestReplayStamp(t *testing.T) {
	ctx := context.Background()
	entries := []string{
		"acq/1", "", "\x00", "\x00resc:replays=", "\x00resc:replays=1", "\x00resc:replays=\x00e",
		"\x00resc:replays=x\x00e", "\x00resc:replays=1x\x00e", "\x00resc:replays=1234567890\x00e",
		"\x00resc:replay=1\x00e", "resc:replays=1\x00e",
		keyspace.StampReplays(1, "acq/1"), keyspace.StampReplays(7, ""), keyspace.StampReplays(123456789, "e"),
		keyspace.StampReplays(2, "\x00resc:replays=5\x00inner"), keyspace.StampReplays(3, "\xff\x00\xe2\x82"),
	}
	for _, c := range bothServers(t) {
		d, err := Detect(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, entry := range entries {
			got, err := unstampScript.Run(ctx, d, c, nil, entry, 42).Slice()
			if err != nil {
				t.Fatalf("legacy %v, %q: %v", d.Legacy, entry, err)
			}
			event, n := keyspace.Unstamp(entry)
			if got[0] != event || got[1] != int64(n) {
				t.Errorf("legacy %v: Lua unstamp(%q) = %q, %v; Go: %q, %d", d.Legacy, entry, got[0], got[1], event, n)
			}
			if want := keyspace.StampReplays(42, entry); got[2] != want {
				t.Errorf("legacy %v: Lua stamp(42, %q) = %q, Go %q", d.Legacy, entry, got[2], want)
			}
		}
	}
	// Go's reading of what it wrote.
	if e, n := keyspace.Unstamp(keyspace.StampReplays(2, "\x00resc:replays=5\x00inner")); e != "\x00resc:replays=5\x00inner" || n != 2 {
		t.Errorf("a stamped stamp-like event reads %q, %d", e, n)
	}
}
