package jsonkind

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestOf(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(`[null, true, 1.5, "s", [], {}]`))
	dec.UseNumber()
	var vs []any
	if err := dec.Decode(&vs); err != nil {
		t.Fatal(err)
	}
	vs = append(vs, 2.0, struct{}{})
	want := []string{"null", "a boolean", "a number", "a string", "an array", "an object", "a number", "a struct {}"}
	for i, v := range vs {
		if got := Of(v); got != want[i] {
			t.Errorf("Of(%#v) = %q, want %q", v, got, want[i])
		}
	}
}
