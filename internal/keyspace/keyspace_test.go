package keyspace

import (
	"path"
	"testing"
)

func TestTakenListPattern(t *testing.T) {
	tests := []struct {
		takenQueue, want string
	}{
		{"in/taken", "in/taken/*"},
		{`a*b?c[d]e\f`, `a\*b\?c\[d\]e\\f/*`},
	}
	for _, tt := range tests {
		if got := TakenListPattern(tt.takenQueue); got != tt.want {
			t.Errorf("TakenListPattern(%q) = %q, want %q", tt.takenQueue, got, tt.want)
		}
		// Redis' glob and path.Match agree on these characters: the pattern
		// matches the queue's own taken lists, and no look-alike.
		for key, want := range map[string]bool{
			tt.takenQueue + "/r1":  true,
			tt.takenQueue + "x/r1": false,
			"x" + tt.takenQueue:    false,
		} {
			if ok, err := path.Match(tt.want, key); err != nil || ok != want {
				t.Errorf("pattern %q on %q: %v, %v; want %v", tt.want, key, ok, err, want)
			}
		}
	}
}

func TestTakenListReplica(t *testing.T) {
	tests := []struct {
		key, id string
		ok      bool
	}{
		{"in/taken/r1", "r1", true},
		{"in/taken/", "", false},
		{"in/taken/a/b", "", false},
		{"in/takenx/r1", "", false},
		{"in/taken", "", false},
		{"other/taken/r1", "", false},
	}
	for _, tt := range tests {
		id, ok := TakenListReplica("in/taken", tt.key)
		if id != tt.id || ok != tt.ok {
			t.Errorf("TakenListReplica(in/taken, %q) = %q, %v; want %q, %v", tt.key, id, ok, tt.id, tt.ok)
		}
	}
}
