package config

import (
	"os"
	"strings"
	"testing"
)

func TestSlot(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for key, want := range map[string]int{
		"foo": 12182, "somekey": 11058, "123456789": 12739,
		"{user1000}.following": Slot("user1000"), "foo{}{bar}": Slot("foo{}{bar}"), "{}x": Slot("{}x"),
		"{plant}/trt/todo": Slot("plant"),
	} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	if HashInput("foo{}{bar}") != "foo{}{bar}" || HashInput("foo{{bar}}zap") != "{bar" || HashInput("a{b}c{d}") != "b" {
		t.Error("HashInput does not follow the specification's examples")
	}
}

// convertedExample is resc's introductory example with every key of its
// watcher under the hash tag {global}: the README's worked example.
const convertedExample = `{
  redis: { url: "redis://127.0.0.1:7000/0" }
  listener_channel: events
  watchers: [{
    input_queue: "{global}/done"
    taken_queue: "{global}/taken"
    rules: [
      { name: "trt", on: "^acq/(?P<plant>\\w+)/(?P<product>\\w+)$",
        make: { task: "trt/${plant}/${product}", queue: "{global}/trt/${plant}/todo", set: "{global}/trt/${plant}/todo-set" } }
      { name: "report", on: "^trt/(?P<plant>\\w+)/(?P<product>\\w+)$",
        make: [{ task: "report/${plant}/${product}", queue: "{global}/report/todo" },
               { task: "${plant}", queue: "{global}/stats/plants", set: "{global}/stats/plants-set" }] }
    ]
  }]
}`

func TestClusterProblems(t *testing.T) {
	load := func(data string) *Config {
		t.Helper()
		c, err := LoadBytes("c.hjson", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if ps := ClusterProblems(load(convertedExample)); len(ps) != 0 {
		t.Errorf("the converted example: %v, want no problem", ps)
	}
	demo, err := os.ReadFile("../examples/demo.hjson")
	if err != nil {
		t.Fatal(err)
	}
	ps := ClusterProblems(load(string(demo)))
	if len(ps) != 1 || ps[0].Path != "watchers[0].input_queue" || !strings.Contains(ps[0].Message, `has no hash tag`) ||
		!strings.Contains(ps[0].Message, `"{global/done}"`) {
		t.Errorf("resc's example: %v, want one problem at the untagged input queue, with a fix", ps)
	}
	for _, tt := range []struct{ name, old, new, path, want string }{
		{"a queue without the tag", `queue: "{global}/report/todo"`, `queue: "report/todo"`,
			"watchers[0].rules[1].make[0].queue", `the task queue "report/todo" hashes to slot`},
		{"a set of another tag", `set: "{global}/stats/plants-set"`, `set: "{stats}/plants-set"`,
			"watchers[0].rules[1].make[1].set", `the set "{stats}/plants-set" hashes to slot`},
		{"a tag made of a variable", `queue: "{global}/trt/${plant}/todo"`, `queue: "{${plant}}/todo"`,
			"watchers[0].rules[0].make.queue", "depends on the event before or inside its hash tag"},
		{"a variable before the tag", `queue: "{global}/trt/${plant}/todo"`, `queue: "${plant}/{global}/todo"`,
			"watchers[0].rules[0].make.queue", "depends on the event"},
		{"a taken queue of another tag", `taken_queue: "{global}/taken"`, `taken_queue: "global/taken"`,
			"watchers[0].taken_queue", `the taken list "global/taken/…" depends on the event`},
		{"a listener stream without the tag", `listener_channel: events`, `listener_stream: events`,
			"listener_stream", `the listener stream (which every watcher's commit appends to) "events" hashes to slot`},
		{"a tagged prefix", `listener_channel: events`, `key_prefix: "{resc}:"`,
			"key_prefix", "has a hash tag, which would put the internal keys of every watcher in its slot"},
	} {
		data := strings.Replace(convertedExample, tt.old, tt.new, 1)
		if data == convertedExample {
			t.Fatalf("%s: %q not in the example", tt.name, tt.old)
		}
		ps := ClusterProblems(load(data))
		if len(ps) == 0 || ps[0].Path != tt.path || !strings.Contains(ps[0].Message, tt.want) {
			t.Errorf("%s: %v, want first a problem at %s holding %q", tt.name, ps, tt.path, tt.want)
		}
	}
}
