package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	acqOn     = `^acq/(?P<process_id>\w+)/(?P<product_id>\w+)$`
	acqName   = "TRT computation on data acquisition"
	trtOn     = `^trt/(?P<process_id>\w+)/(?P<product_id>\w{16})$`
	childsURL = "http://localhost:8080/eyeron/pub/products/${product_id}/direct-childs"
)

// defaultFetch is the FetchSettings of a file without fetch.
var defaultFetch = DefaultFetchSettings()

// watcher is a Watcher with the default extensions.
func watcher(i int, input, taken string, rules ...Rule) Watcher {
	return Watcher{
		Index:            i,
		InputQueue:       input,
		TakenQueue:       taken,
		Concurrency:      DefaultConcurrency,
		FetchConcurrency: DefaultFetchConcurrency,
		BatchSize:        DefaultBatchSize,
		Rules:            rules,
	}
}

// config is a Config with the default extensions.
func config(path, redisURL, listener string, ws ...Watcher) *Config {
	return &Config{
		Path:                 path,
		RedisURL:             redisURL,
		ListenerChannel:      listener,
		ListenerStreamMaxLen: DefaultListenerStreamMaxLen,
		MaxEventBytes:        DefaultMaxEventBytes,
		KeyPrefix:            DefaultKeyPrefix,
		Fetch:                defaultFetch,
		Reschedule:           DefaultRescheduleSettings(),
		Cluster:              DefaultClusterSettings(),
		Watchers:             ws,
	}
}

// withWarnings adds warnings of file to c.
func withWarnings(c *Config, file string, paths ...string) *Config {
	for _, p := range paths {
		msg := watcherRedis
		if p == "task_set" {
			msg = taskSetIgnored
		}
		c.Warnings = append(c.Warnings, Problem{File: file, Path: p, Message: msg})
	}
	return c
}

// rescExamples are the example configurations of resc and what they load to.
func rescExamples() map[string]*Config {
	const (
		simple   = "testdata/resc/simple-conf.json"
		simpleH  = "testdata/resc/simple-conf.hjson"
		conf     = "testdata/resc/conf.json"
		complexe = "testdata/resc/complexe-conf.json"
		demo     = "testdata/resc/demo.conf.json"
		multi    = "testdata/resc/multi-make.json"
		local    = "redis://127.0.0.1/"
	)
	acq := func(queue, set string) Rule {
		return Rule{Name: acqName, On: acqOn, Make: []Maker{{
			Task: "trt/${process_id}/${product_id}", Queue: queue, Set: set,
		}}}
	}
	twoWatchers := func() []Watcher {
		return []Watcher{
			watcher(0, "global/done", "global/taken",
				acq("trt/${process_id}/todo", ""),
				Rule{Index: 1, Name: "TRT propagation", On: trtOn, Make: []Maker{{
					Task: DefaultTask, Queue: "global/to-propagate",
				}}},
			),
			watcher(1, "global/to-propagate", "global/to-propagate/taken",
				Rule{
					Name:  "TRT of the children",
					On:    trtOn,
					Fetch: []Fetcher{{URL: childsURL, Returns: "child", Settings: defaultFetch}},
					Make: []Maker{{
						Task:  "trt/${child.processId}/${child.productId}",
						Queue: "trt/${child.processId}/todo",
					}},
				},
			),
		}
	}
	return map[string]*Config{
		simple: withWarnings(config(simple, local, "events",
			watcher(0, "global/done", "global/taken", acq("trt/${process_id}/todo", "")),
		), simple, "task_set"),
		simpleH: config(simpleH, local, "events",
			watcher(0, "global/done", "global/taken",
				acq("trt/${process_id}/todo-queue", "trt/${process_id}/todo-set")),
		),
		conf:     withWarnings(config(conf, local, "", twoWatchers()...), conf, "task_set"),
		complexe: withWarnings(config(complexe, local, "resc/events", twoWatchers()...), complexe, "task_set"),
		demo: withWarnings(config(demo, local, "events",
			watcher(0, "global/events", "global/events/taken", Rule{
				Name: "thumbnail of a new product",
				On:   `^product/(?P<product_id>\w+)/created$`,
				Make: []Maker{{Task: "thumbnail/${product_id}", Queue: "thumbnail/todo", Set: "${product_id}/todo"}},
			}),
			watcher(1, "thumbnail/done", "thumbnail/done/taken", Rule{
				Name: anonymousRule,
				On:   `^thumbnail/(?P<product_id>\w+)$`,
				Make: []Maker{{Task: "publish/${product_id}", Queue: "publish/todo", Set: "publish/${product_id}/todo"}},
			}),
		), demo, "watchers[0].redis", "watchers[1].redis"),
		multi: config(multi, local, "",
			watcher(0, "global/done", "global/done/taken", Rule{
				Name: "acquisition",
				On:   acqOn,
				Make: []Maker{
					{Name: "compute", Task: "trt/${process_id}/${product_id}", Queue: "trt/${process_id}/todo", Set: "trt/${process_id}/todo-set"},
					{Index: 1, Name: "archive", Task: DefaultTask, Queue: "archive/todo"},
				},
			}),
		),
	}
}

func TestLoadRescExamples(t *testing.T) {
	files, err := filepath.Glob("testdata/resc/*")
	if err != nil {
		t.Fatal(err)
	}
	examples := rescExamples()
	if len(files) != len(examples) {
		t.Fatalf("testdata/resc has %d files, the test knows %d", len(files), len(examples))
	}
	for path, want := range examples {
		t.Run(filepath.Base(path), func(t *testing.T) {
			got, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			assertConfig(t, got, want)
		})
	}
}

// TestLoadCRLF loads every example with CRLF line endings.
func TestLoadCRLF(t *testing.T) {
	files, err := filepath.Glob("testdata/*/*")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "testdata/example.hjson")
	for _, path := range files {
		t.Run(path, func(t *testing.T) {
			lf, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(lf, []byte("\r")) {
				t.Fatalf("%s already has a CR", path)
			}
			crlf := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
			want, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got, err := LoadBytes(path, crlf)
			if err != nil {
				t.Fatalf("LoadBytes with CRLF: %v", err)
			}
			assertConfig(t, got, want)
		})
	}
}

func TestLoadFileWithCRLF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conf.hjson")
	data := "watchers: [\r\n  {\r\n    input_queue: in  \r\n    rules: [\r\n      {\r\n" +
		"        on: ^a$\r\n        make: {\r\n          queue: q\r\n        }\r\n      }\r\n    ]\r\n  }\r\n]\r\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config(path, "", "", watcher(0, "in", "in/taken", Rule{
		Name: anonymousRule, On: "^a$", Make: []Maker{{Task: DefaultTask, Queue: "q"}},
	}))
	assertConfig(t, got, want)
}

func assertConfig(t *testing.T, got, want *Config) {
	t.Helper()
	// Maker.Path and Fetcher.Path are checked apart (TestMakerPath,
	// TestFetcherSettings): here only that they locate the entry inside its
	// rule, then they are left out.
	if got != nil {
		for _, w := range got.Watchers {
			for _, r := range w.Rules {
				prefix := RulePath(w.Index, r.Index, "") + "."
				for i := range r.Make {
					if !strings.HasPrefix(r.Make[i].Path, prefix) {
						t.Errorf("make entry path %q is not inside %s", r.Make[i].Path, prefix)
					}
					r.Make[i].Path = ""
				}
				for i := range r.Fetch {
					if !strings.HasPrefix(r.Fetch[i].Path, prefix) {
						t.Errorf("fetcher path %q is not inside %s", r.Fetch[i].Path, prefix)
					}
					r.Fetch[i].Path = ""
				}
			}
		}
	}
	if want != nil {
		for _, w := range want.Watchers {
			for _, r := range w.Rules {
				for i := range r.Make {
					r.Make[i].Path = ""
				}
				for i := range r.Fetch {
					r.Fetch[i].Path = ""
				}
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("got\n%s\nwant\n%s", g, w)
	}
}

func TestLoadDefaultsAndExtensions(t *testing.T) {
	tests := []struct {
		name string
		data string
		want *Config
	}{{
		name: "defaults",
		data: `{"watchers":[{"input_queue":"in","rules":[{"on":"^a$","make":{"queue":"q"}}]}]}`,
		want: config("c.json", "", "", watcher(0, "in", "in/taken", Rule{
			Name: anonymousRule, On: "^a$", Make: []Maker{{Task: DefaultTask, Queue: "q"}},
		})),
	}, {
		name: "extensions",
		data: `{
			"redis": {"url": "rediss://user:pw@redis.example:6380/2"},
			"key_prefix": "myapp:resc:",
			"http_addr": "off",
			"listener_stream": "resc/events", "listener_stream_maxlen": 5000, "max_event_bytes": 1048576,
			"fetch": {"timeout_ms": 2500, "retries": 0, "max_body_bytes": 1024},
			"watchers": [{
				"input_queue": "in", "taken_queue": "in/mine",
				"concurrency": 100000, "fetch_concurrency": 1, "batch_size": 10000,
				"rules": [{"name": "", "on": "^a$", "make": {"name": "m", "task": "t", "queue": "q", "set": "s"}}]
			}]
		}`,
		want: &Config{
			Path:                 "c.json",
			RedisURL:             "rediss://user:pw@redis.example:6380/2",
			KeyPrefix:            "myapp:resc:",
			HTTPAddr:             "off",
			ListenerStream:       "resc/events",
			ListenerStreamMaxLen: 5000,
			MaxEventBytes:        1 << 20,
			Fetch: func() FetchSettings {
				f := DefaultFetchSettings()
				f.Timeout, f.Retries, f.MaxBody = 2500*time.Millisecond, 0, 1024
				return f
			}(),
			Reschedule: DefaultRescheduleSettings(),
			Cluster:    DefaultClusterSettings(),
			Watchers: []Watcher{{
				InputQueue: "in", TakenQueue: "in/mine",
				Concurrency: 100000, FetchConcurrency: 1, BatchSize: 10000,
				Rules: []Rule{{Name: anonymousRule, On: "^a$", Make: []Maker{{Name: "m", Task: "t", Queue: "q", Set: "s"}}}},
			}},
		},
	}, {
		name: "unix socket",
		data: `{"redis":{"url":"unix:///run/redis.sock"},"watchers":[{"input_queue":"in","rules":[{"on":"^a$","make":{"queue":"q"}}]}]}`,
		want: func() *Config {
			c := config("c.json", "unix:///run/redis.sock", "", watcher(0, "in", "in/taken", Rule{
				Name: anonymousRule, On: "^a$", Make: []Maker{{Task: DefaultTask, Queue: "q"}},
			}))
			return c
		}(),
	}, {
		name: "aliases of resc's serde",
		data: `{"watchers":[{"input_queue":"in","rules":[
			{"name":"r0","on_regex":"^a$","fetchers":[{"url":"u","returns":"x"}],"makers":{"queue":"q0"}},
			{"name":"r1","on":"^b$","todo":[{"queue":"q1"},{"queue":"q2"}]}
		]}]}`,
		want: config("c.json", "", "", watcher(0, "in", "in/taken",
			Rule{Name: "r0", On: "^a$", Fetch: []Fetcher{{URL: "u", Returns: "x", Settings: defaultFetch}},
				Make: []Maker{{Task: DefaultTask, Queue: "q0"}}},
			Rule{Index: 1, Name: "r1", On: "^b$",
				Make: []Maker{{Task: DefaultTask, Queue: "q1"}, {Index: 1, Task: DefaultTask, Queue: "q2"}}},
		)),
	}, {
		name: "top-level and watchers' redis agree",
		data: `{"redis":{"url":"redis://r/"},"watchers":[
			{"redis":{"url":"redis://r/"},"input_queue":"a","rules":[{"on":"^a$","make":{"queue":"q"}}]},
			{"redis":{},"input_queue":"b","rules":[{"on":"^a$","make":{"queue":"q"}}]}
		]}`,
		want: withWarnings(config("c.json", "redis://r/", "",
			watcher(0, "a", "a/taken", Rule{Name: anonymousRule, On: "^a$", Make: []Maker{{Task: DefaultTask, Queue: "q"}}}),
			watcher(1, "b", "b/taken", Rule{Name: anonymousRule, On: "^a$", Make: []Maker{{Task: DefaultTask, Queue: "q"}}}),
		), "c.json", "watchers[0].redis", "watchers[1].redis"),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadBytes("c.json", []byte(tt.data))
			if err != nil {
				t.Fatalf("LoadBytes: %v", err)
			}
			assertConfig(t, got, tt.want)
		})
	}
}

func TestLoadFormatByExtension(t *testing.T) {
	const hjsonOnly = `watchers: [{input_queue: "in", rules: [{on: "^a$", make: {queue: "q"}}]}]`
	for _, path := range []string{"c.hjson", "C.HJSON", "dir.json/c.Hjson"} {
		if _, err := LoadBytes(path, []byte(hjsonOnly)); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	for _, path := range []string{"c.json", "c.JSON"} {
		if _, err := LoadBytes(path, []byte(hjsonOnly)); err == nil || !strings.Contains(err.Error(), "syntax error at line 1, column 1: invalid character 'w'") {
			t.Errorf("%s: got %v, want a JSON syntax error", path, err)
		}
	}
}

func TestLoadByteOrderMark(t *testing.T) {
	data := "\uFEFF" + `{"watchers":[{"input_queue":"in","rules":[{"on":"^a$","make":{"queue":"q"}}]}]}`
	for _, path := range []string{"c.json", "c.hjson"} {
		if _, err := LoadBytes(path, []byte(data)); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.json")
	c, err := Load(path)
	if c != nil {
		t.Errorf("got a Config %+v", c)
	}
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 {
		t.Fatalf("got %v, want one Problem", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) is false", err)
	}
	want := Problem{File: path, Message: "cannot read the file: no such file or directory", Err: ps[0].Err}
	if ps[0] != want {
		t.Errorf("got %+v, want %+v", ps[0], want)
	}
}

func TestLoadJSONSyntaxErrorUnwraps(t *testing.T) {
	_, err := LoadBytes("c.json", []byte(`{"watchers": [}`))
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("errors.As(%v, *json.SyntaxError) is false", err)
	}
}

// want is a problem expected from a broken configuration: the exact path and
// rule, and a substring of the message.
type want struct {
	path, rule, msg string
}

// inRule is a configuration with one watcher whose only rule is rule.
func inRule(rule string) string {
	return `{"watchers":[{"input_queue":"in","rules":[` + rule + `]}]}`
}

// inMake is a configuration whose only rule, named "r", makes make.
func inMake(make string) string {
	return inRule(`{"name":"r","on":"^a$","make":` + make + `}`)
}

// inWatcher is a configuration with the watchers given.
func inWatcher(watchers ...string) string {
	return `{"watchers":[` + strings.Join(watchers, ",") + `]}`
}

// okRules is a valid rules entry of a watcher.
const okRules = `"rules":[{"on":"^a$","make":{"queue":"q"}}]`

func TestLoadProblems(t *testing.T) {
	r0 := RulePath(0, 0, "")
	tests := []struct {
		name string
		path string // default c.json
		data string
		want []want
	}{
		// The file as a whole.
		{"unknown extension", "c.yaml", `{}`, []want{{"", "", `unknown file extension ".yaml": use .json or .hjson`}}},
		{"no extension", "conf", `{}`, []want{{"", "", `unknown file extension "": use .json or .hjson`}}},
		{"empty JSON", "", " \n", []want{{"", "", "the file is empty"}}},
		{"empty Hjson", "c.hjson", "", []want{{"", "", "the file is empty"}}},
		{"JSON syntax error", "", "{\n  \"watchers\": [\n    {,}\n  ]\n}",
			[]want{{"", "", "syntax error at line 3, column 6: invalid character ','"}}},
		{"JSON syntax error after a multi-byte character", "", "{\"é\": 1 2}",
			[]want{{"", "", "syntax error at line 1, column 9: invalid character '2'"}}},
		{"JSON cut short", "", "{\n\"watchers\": [",
			[]want{{"", "", "syntax error at line 2, column 14: unexpected end of JSON input"}}},
		{"JSON trailing data", "", "{}\n}", []want{{"", "", "syntax error at line 2, column 1: invalid character '}' after top-level value"}}},
		{"Hjson syntax error", "c.hjson", "watchers: [\n  {\n    input_queue: in\n  }\n",
			[]want{{"", "", "syntax error at line 5, column 1: End of input while parsing an array"}}},
		{"Hjson syntax error on the first line", "c.hjson", `{"a"}`,
			[]want{{"", "", "syntax error at line 1, column 5: Expected ':' instead of '}'"}}},
		{"Hjson syntax error on the second line", "c.hjson", "{\n\"a\"}",
			[]want{{"", "", "syntax error at line 2, column 4: Expected ':' instead of '}'"}}},
		{"Hjson duplicate key", "c.hjson", "{\n  watchers: []\n  key_prefix: a\n  key_prefix: b\n}\n",
			[]want{{"", "", `syntax error at line 5, column 1: duplicate key "key_prefix"`}}},
		{"Hjson duplicate key at the end", "c.hjson", "watchers: []\nkey_prefix: a\nkey_prefix: b\n",
			[]want{{"", "", `syntax error at line 4, column 1: duplicate key "key_prefix"`}}},
		{"not an object", "", `["watchers"]`, []want{{"", "", "the configuration must be an object, not an array"}}},
		{"Hjson not an object", "c.hjson", `"watchers"`, []want{{"", "", "the configuration must be an object, not a string"}}},

		// Top level.
		{"watchers missing", "", `{}`, []want{{"watchers", "", "is required"}}},
		{"watchers null", "", `{"watchers":null}`, []want{{"watchers", "", "must be an array of objects, not null"}}},
		{"watchers object", "", `{"watchers":{}}`, []want{{"watchers", "", "must be an array of objects, not an object"}}},
		{"watchers empty", "", `{"watchers":[]}`, []want{{"watchers", "", "must not be empty: give at least one watcher"}}},
		{"watcher not an object", "", `{"watchers":["in"]}`, []want{{"watchers[0]", "", "must be an object, not a string"}}},
		{"unknown top-level key", "", `{"redis_url":"redis://r/","watchers":[]}`, []want{
			{"redis_url", "", `unknown key "redis_url"`},
			{"watchers", "", "must not be empty"},
		}},
		{"duplicate key in JSON", "", `{"watchers":[],"watchers":[]}`, []want{
			{"watchers", "", "must not be empty"},
			{"watchers", "", `duplicate key "watchers": give it once`},
		}},
		{"redis not an object", "", `{"redis":"redis://r/","watchers":[]}`, []want{
			{"redis", "", "must be an object, not a string"},
			{"watchers", "", "must not be empty"},
		}},
		{"redis.url wrong", "", `{"redis":{"url":"http://r/","db":1},"watchers":[]}`, []want{
			{"redis.url", "", `"http://r/" must start with redis://, rediss:// or unix://`},
			{"redis.db", "", `unknown key "db"`},
			{"watchers", "", "must not be empty"},
		}},
		{"redis.url empty", "", `{"redis":{"url":""},"watchers":[]}`, []want{
			{"redis.url", "", "must not be empty"},
			{"watchers", "", "must not be empty"},
		}},
		{"redis.url number", "", `{"redis":{"url":6379},"watchers":[]}`, []want{
			{"redis.url", "", "must be a string, not a number"},
			{"watchers", "", "must not be empty"},
		}},
		{"listener_channel, key_prefix, http_addr, task_set of the wrong type", "",
			`{"listener_channel":1,"key_prefix":"","http_addr":true,"task_set":[],"watchers":[]}`, []want{
				{"listener_channel", "", "must be a string, not a number"},
				{"key_prefix", "", "must not be empty"},
				{"http_addr", "", "must be a string, not a boolean"},
				{"task_set", "", "must be a string, not an array"},
				{"watchers", "", "must not be empty"},
			}},
		{"listener_stream of the wrong type, maxlen and max_event_bytes out of range", "",
			`{"listener_stream":[],"listener_stream_maxlen":0,"max_event_bytes":536870913,"watchers":[]}`, []want{
				{"listener_stream", "", "must be a string, not an array"},
				{"listener_stream_maxlen", "", "must be a positive integer, not 0"},
				{"max_event_bytes", "", "must be at most 536870912, not 536870913"},
				{"watchers", "", "must not be empty"},
			}},
		{"listener_stream is a watcher's queue", "",
			`{"listener_stream":"in/taken","listener_stream_maxlen":"9","watchers":[{"input_queue":"in","rules":[{"on":"^a$","make":{"queue":"q"}}]}]}`, []want{
				{"listener_stream_maxlen", "", "must be a positive integer, not a string"},
				{"listener_stream", "", `"in/taken" is a queue of watchers[0]: the listener stream needs a key of its own`},
			}},
		{"fetch settings", "",
			`{"fetch":{"timeout_ms":0,"retries":-1,"max_body_bytes":"10","timeout":5},"watchers":[]}`, []want{
				{"fetch.timeout_ms", "", "must be a positive integer, not 0"},
				{"fetch.retries", "", "must be an integer >= 0, not -1"},
				{"fetch.max_body_bytes", "", "must be a positive integer, not a string"},
				{"fetch.timeout", "", `unknown key "timeout"`},
				{"watchers", "", "must not be empty"},
			}},
		{"fetch numbers not integers", "",
			`{"fetch":{"timeout_ms":1.5,"retries":1e3,"max_body_bytes":99999999999999999999},"watchers":[]}`, []want{
				{"fetch.timeout_ms", "", "must be a positive integer, not 1.5"},
				{"fetch.retries", "", "must be an integer >= 0, not 1e3"},
				{"fetch.max_body_bytes", "", "must be at most 9223372036854775807"},
				{"watchers", "", "must not be empty"},
			}},
		{"fetch timeout overflows a Duration", "", `{"fetch":{"timeout_ms":9223372036854775807},"watchers":[]}`, []want{
			{"fetch.timeout_ms", "", "must be at most 9223372036854, not 9223372036854775807"},
			{"watchers", "", "must not be empty"},
		}},
		{"fetch null", "", `{"fetch":null,"watchers":[]}`, []want{
			{"fetch", "", "must be an object, not null"},
			{"watchers", "", "must not be empty"},
		}},
		{"backoff and breaker settings", "",
			`{"fetch":{"backoff_min_ms":0,"backoff_max_ms":-1,"breaker_failures":-1,"breaker_open_ms":"1","breaker_half_open_requests":0},"watchers":[]}`, []want{
				{"fetch.backoff_min_ms", "", "must be a positive integer, not 0"},
				{"fetch.backoff_max_ms", "", "must be a positive integer, not -1"},
				{"fetch.breaker_failures", "", "must be an integer >= 0, not -1"},
				{"fetch.breaker_open_ms", "", "must be a positive integer, not a string"},
				{"fetch.breaker_half_open_requests", "", "must be a positive integer, not 0"},
				{"watchers", "", "must not be empty"},
			}},
		{"reschedule settings", "",
			`{"fetch":{"attempts":0,"reschedule_delay_ms":-5,"reschedule_max_delay_ms":"x"},"watchers":[{"input_queue":"in","rules":[{"on":"a","fetch":[{"url":"http://h/","returns":"r","attempts":2}],"make":{"queue":"q"}}]}]}`, []want{
				{"fetch.attempts", "", "must be an integer from 1 to 1000, not 0"},
				{"fetch.reschedule_delay_ms", "", "must be a positive integer, not -5"},
				{"fetch.reschedule_max_delay_ms", "", "must be a positive integer, not a string"},
				{"watchers[0].rules[0].fetch[0].attempts", "", "unknown key"},
			}},
		{"reschedule_max_delay_ms below reschedule_delay_ms", "",
			`{"fetch":{"reschedule_delay_ms":2000,"reschedule_max_delay_ms":1000},"watchers":[]}`, []want{
				{"watchers", "", "must not be empty"},
				{"fetch.reschedule_max_delay_ms", "", "reschedule_max_delay_ms (1000) must be at least reschedule_delay_ms (2000)"},
			}},
		{"reschedule_delay_ms above the default maximum", "",
			`{"fetch":{"reschedule_delay_ms":3600000},"watchers":[]}`, []want{
				{"watchers", "", "must not be empty"},
				{"fetch.reschedule_delay_ms", "", "reschedule_max_delay_ms (600000) must be at least reschedule_delay_ms (3600000)"},
			}},
		{"breaker counts too large", "",
			`{"fetch":{"breaker_failures":1000001,"breaker_half_open_requests":4294967296},"watchers":[]}`, []want{
				{"fetch.breaker_failures", "", "must be at most 1000000, not 1000001"},
				{"fetch.breaker_half_open_requests", "", "must be at most 1000000, not 4294967296"},
				{"watchers", "", "must not be empty"},
			}},
		{"backoff_min_ms above the default backoff_max_ms, reported last", "",
			`{"fetch":{"backoff_min_ms":5000},"watchers":[]}`, []want{
				{"watchers", "", "must not be empty"},
				{"fetch.backoff_min_ms", "", "must be at most backoff_max_ms (2000), not 5000"},
			}},
		{"backoff_max_ms below the default backoff_min_ms", "",
			`{"fetch":{"backoff_max_ms":50},"watchers":[]}`, []want{
				{"watchers", "", "must not be empty"},
				{"fetch.backoff_max_ms", "", "must be at least backoff_min_ms (100), not 50"},
			}},
		{"fetcher settings of the wrong type", "",
			inRule(`{"name":"r","on":"^a$","fetch":[{"url":"u","returns":"x","timeout_ms":0,"escape":"no","retries":1.5,"breaker_open":1,"max_body_bytes":null}],"make":{"queue":"q"}}`), []want{
				{r0 + ".fetch[0].timeout_ms", "r", "must be a positive integer, not 0"},
				{r0 + ".fetch[0].escape", "r", "must be a boolean, not a string"},
				{r0 + ".fetch[0].retries", "r", "must be an integer >= 0, not 1.5"},
				{r0 + ".fetch[0].breaker_open", "r", `unknown key "breaker_open"`},
				{r0 + ".fetch[0].max_body_bytes", "r", "must be a positive integer, not null"},
			}},
		{"fetcher backoff against the top-level one given after the watchers", "",
			`{"watchers":[{"input_queue":"in","rules":[{"name":"r","on":"^a$","fetchers":[
				{"url":"u","returns":"x","backoff_max_ms":200},
				{"url":"v","returns":"y","backoff_min_ms":50},
				{"url":"w","returns":"z","backoff_min_ms":700,"backoff_max_ms":600}
			],"make":{"queue":"q"}}]}],"fetch":{"backoff_min_ms":500}}`, []want{
				{r0 + ".fetchers[0].backoff_max_ms", "r", "must be at least backoff_min_ms (500), not 200"},
				{r0 + ".fetchers[2].backoff_min_ms", "r", "must be at most backoff_max_ms (600), not 700"},
			}},
		{"top-level backoff wrong, fetchers that give none not reported again", "",
			`{"fetch":{"backoff_min_ms":3000,"backoff_max_ms":1000},"watchers":[{"input_queue":"in","rules":[{"on":"^a$","fetch":[{"url":"u","returns":"x"}],"make":{"queue":"q"}}]}]}`, []want{
				{"fetch.backoff_min_ms", "", "must be at most backoff_max_ms (1000), not 3000"},
			}},

		// Watchers.
		{"input_queue missing, rules missing", "", inWatcher(`{}`), []want{
			{"watchers[0].input_queue", "", "is required"},
			{"watchers[0].rules", "", "is required"},
		}},
		{"input_queue null, taken_queue empty, rules empty", "",
			inWatcher(`{"input_queue":null,"taken_queue":"","rules":[]}`), []want{
				{"watchers[0].input_queue", "", "must be a string, not null"},
				{"watchers[0].taken_queue", "", "must not be empty"},
				{"watchers[0].rules", "", "must not be empty: give at least one rule"},
			}},
		{"input_queue empty, rules not an array", "", inWatcher(`{"input_queue":"","rules":{}}`), []want{
			{"watchers[0].input_queue", "", "must not be empty"},
			{"watchers[0].rules", "", "must be an array of objects, not an object"},
		}},
		{"rule not an object", "", inWatcher(`{"input_queue":"in","rules":[{"on":"^a$","make":{"queue":"q"}},"^b$"]}`), []want{
			{"watchers[0].rules[1]", "", "must be an object, not a string"},
		}},
		{"extensions out of range", "",
			inWatcher(`{"input_queue":"in","concurrency":100001,"fetch_concurrency":"8","batch_size":10001,` + okRules + `}`), []want{
				{"watchers[0].concurrency", "", "must be at most 100000, not 100001"},
				{"watchers[0].fetch_concurrency", "", "must be a positive integer, not a string"},
				{"watchers[0].batch_size", "", "must be at most 10000, not 10001"},
			}},
		{"extensions zero", "",
			inWatcher(`{"input_queue":"in","concurrency":0,"fetch_concurrency":-3,"batch_size":null,` + okRules + `}`), []want{
				{"watchers[0].concurrency", "", "must be a positive integer, not 0"},
				{"watchers[0].fetch_concurrency", "", "must be a positive integer, not -3"},
				{"watchers[0].batch_size", "", "must be a positive integer, not null"},
			}},
		{"unknown watcher key", "", inWatcher(`{"input_queue":"in","output_queue":"out",` + okRules + `}`), []want{
			{"watchers[0].output_queue", "", `unknown key "output_queue"`},
		}},
		{"same input queue", "", inWatcher(
			`{"input_queue":"in",`+okRules+`}`,
			`{"input_queue":"other",`+okRules+`}`,
			`{"input_queue":"in",`+okRules+`}`,
		), []want{
			{"watchers[2].input_queue", "", `input queue "in" is already watched by watchers[0]: each input queue is watched once`},
		}},
		{"same input queue and same taken queue given", "", inWatcher(
			`{"input_queue":"in","taken_queue":"t",`+okRules+`}`,
			`{"input_queue":"in","taken_queue":"t",`+okRules+`}`,
		), []want{
			{"watchers[1].input_queue", "", `input queue "in" is already watched by watchers[0]`},
			{"watchers[1].taken_queue", "", `taken queue "t" is already used by watchers[0]: each watcher needs its own`},
		}},
		{"same taken queue as a default one", "", inWatcher(
			`{"input_queue":"in",`+okRules+`}`,
			`{"input_queue":"other","taken_queue":"in/taken",`+okRules+`}`,
		), []want{
			{"watchers[1].taken_queue", "", `taken queue "in/taken" is already used by watchers[0]`},
		}},
		{"watchers use different Redis URLs", "", inWatcher(
			`{"redis":{"url":"redis://a/"},"input_queue":"a",`+okRules+`}`,
			`{"redis":{"url":"redis://b/"},"input_queue":"b",`+okRules+`}`,
		), []want{
			{"watchers[1].redis.url", "", `watchers use different Redis URLs; resc-go uses one Redis: "redis://b/" here, "redis://a/" at watchers[0].redis.url`},
		}},
		{"a watcher's Redis URL differs from the top-level one", "",
			`{"watchers":[{"redis":{"url":"redis://a/"},"input_queue":"a",` + okRules + `}],"redis":{"url":"redis://b/"}}`, []want{
				{"redis.url", "", `watchers use different Redis URLs; resc-go uses one Redis: "redis://b/" here, "redis://a/" at watchers[0].redis.url`},
			}},
		{"a watcher's redis is checked", "", inWatcher(`{"redis":{"url":"localhost","port":6379},"input_queue":"a",` + okRules + `}`), []want{
			{"watchers[0].redis.url", "", `"localhost" must start with redis://`},
			{"watchers[0].redis.port", "", `unknown key "port"`},
		}},

		// Rules.
		{"rule without on nor make", "", inRule(`{"name":"r"}`), []want{
			{r0 + ".on", "r", "is required"},
			{r0 + ".make", "r", "is required"},
		}},
		{"anonymous rule without on", "", inRule(`{"make":{"queue":"q"}}`), []want{
			{r0 + ".on", "", "is required"},
		}},
		{"rule name given last still names the problems", "", inRule(`{"on":"","make":{"queue":"q"},"name":"late"}`), []want{
			{r0 + ".on", "late", "must not be empty"},
		}},
		{"rule name not a string", "", inRule(`{"name":7,"on":"^a$","make":{"queue":"q"}}`), []want{
			{r0 + ".name", "", "must be a string, not a number"},
		}},
		{"on not a string", "", inRule(`{"name":"r","on":["^a$"],"make":{"queue":"q"}}`), []want{
			{r0 + ".on", "r", "must be a string, not an array"},
		}},
		{"on and on_regex", "", inRule(`{"name":"r","on":"^a$","on_regex":"^b$","make":{"queue":"q"}}`), []want{
			{r0 + ".on_regex", "r", `"on" and "on_regex" are the same key: give only one`},
		}},
		{"make and todo", "", inRule(`{"name":"r","on":"^a$","todo":{"queue":"q"},"make":{"queue":"q"}}`), []want{
			{r0 + ".make", "r", `"todo" and "make" are the same key: give only one`},
		}},
		{"makers and make", "", inRule(`{"name":"r","on":"^a$","makers":[{"queue":"q"}],"make":{"queue":"q"}}`), []want{
			{r0 + ".make", "r", `"makers" and "make" are the same key: give only one`},
		}},
		{"fetch and fetchers", "", inRule(`{"name":"r","on":"^a$","fetch":[],"fetchers":[],"make":{"queue":"q"}}`), []want{
			{r0 + ".fetchers", "r", `"fetch" and "fetchers" are the same key: give only one`},
		}},
		{"unknown rule key", "", inRule(`{"name":"r","on":"^a$","when":"always","make":{"queue":"q"}}`), []want{
			{r0 + ".when", "r", `unknown key "when"`},
		}},

		// Fetchers.
		{"fetch not an array", "", inRule(`{"name":"r","on":"^a$","fetch":{"url":"u","returns":"x"},"make":{"queue":"q"}}`), []want{
			{r0 + ".fetch", "r", "must be an array of objects, not an object"},
		}},
		{"fetcher without url nor returns", "", inRule(`{"name":"r","on":"^a$","fetch":[{"method":"GET"}],"make":{"queue":"q"}}`), []want{
			{r0 + ".fetch[0].method", "r", `unknown key "method"`},
			{r0 + ".fetch[0].url", "r", "is required"},
			{r0 + ".fetch[0].returns", "r", "is required"},
		}},
		{"fetcher with empty url, returns not a word", "",
			inRule(`{"name":"r","on":"^a$","fetch":[{"url":"","returns":"child.id"},{"url":"u","returns":null}],"make":{"queue":"q"}}`), []want{
				{r0 + ".fetch[0].url", "r", "must not be empty"},
				{r0 + ".fetch[0].returns", "r", `"child.id" must be a word (letters, digits, _): it names the variables ${child.id.key}`},
				{r0 + ".fetch[1].returns", "r", "must be a string, not null"},
			}},
		{"two fetchers return the same namespace", "",
			inRule(`{"name":"r","on":"^a$","fetchers":[{"url":"u","returns":"x"},{"url":"v","returns":"y"},{"url":"w","returns":"x"}],"make":{"queue":"q"}}`), []want{
				{r0 + ".fetchers[2].returns", "r", `"x" is already returned by fetch[0]: each fetcher needs its own namespace`},
			}},
		{"fetcher not an object", "", inRule(`{"name":"r","on":"^a$","fetch":["u"],"make":{"queue":"q"}}`), []want{
			{r0 + ".fetch[0]", "r", "must be an object, not a string"},
		}},

		// Make entries.
		{"make a string", "", inMake(`"q"`), []want{
			{r0 + ".make", "r", "must be an object or a non-empty array of objects, not a string"},
		}},
		{"make null", "", inMake(`null`), []want{
			{r0 + ".make", "r", "must be an object or a non-empty array of objects, not null"},
		}},
		{"make empty", "", inMake(`[]`), []want{
			{r0 + ".make", "r", "must not be empty: give at least one make entry"},
		}},
		{"make entry not an object", "", inMake(`[{"queue":"q"},["q"]]`), []want{
			{r0 + ".make[1]", "r", "must be an object, not an array"},
		}},
		{"make without queue", "", inMake(`{"task":"t"}`), []want{
			{r0 + ".make.queue", "r", "is required"},
		}},
		{"make entries broken", "", inMake(`[
				{"name":true,"task":"","queue":"","set":""},
				{"task":1,"queue":2,"set":null,"sets":"s"}
			]`), []want{
			{r0 + ".make[0].name", "r", "must be a string, not a boolean"},
			{r0 + ".make[0].task", "r", "task must not be empty: omit it for the default ${input_task}"},
			{r0 + ".make[0].queue", "r", "must not be empty"},
			{r0 + ".make[0].set", "r", "set must not be empty: omit it to push without deduplication"},
			{r0 + ".make[1].task", "r", "must be a string, not a number"},
			{r0 + ".make[1].queue", "r", "must be a string, not a number"},
			{r0 + ".make[1].set", "r", "must be a string, not null"},
			{r0 + ".make[1].sets", "r", `unknown key "sets"`},
		}},
		{"todo entry without queue", "", inRule(`{"name":"r","on":"^a$","todo":[{"task":"t"}]}`), []want{
			{r0 + ".todo[0].queue", "r", "is required"},
		}},

		// Several problems in one file, every one reported in file order.
		{"several problems", "", `{
			"redis": {"url": "redis:/oops"},
			"task_set": "global/todo",
			"watchers": [
				{
					"input_queue": "global/done",
					"rules": [
						{"name": "first", "on": "^a$", "make": {"queue": "q", "set": ""}},
						{"on": "^b$", "fetch": [{"url": "u", "returns": "x"}, {"url": "v", "returns": "x"}], "make": []}
					]
				},
				{
					"input_queue": "global/done",
					"batch_size": 0,
					"rules": [{"name": "third", "make": {"queue": "q", "tasks": "t"}}]
				}
			],
			"colour": "blue"
		}`, []want{
			{"redis.url", "", `"redis:/oops" must start with redis://`},
			{RulePath(0, 0, "make.set"), "first", "set must not be empty"},
			{RulePath(0, 1, "fetch[1].returns"), "", `"x" is already returned by fetch[0]`},
			{RulePath(0, 1, "make"), "", "must not be empty"},
			{"watchers[1].batch_size", "", "must be a positive integer, not 0"},
			{RulePath(1, 0, "make.tasks"), "third", `unknown key "tasks"`},
			{RulePath(1, 0, "on"), "third", "is required"},
			{"watchers[1].input_queue", "", `input queue "global/done" is already watched by watchers[0]`},
			{"colour", "", `unknown key "colour"`},
		}},
		{"several problems in Hjson", "c.hjson", `
			# numbers and booleans where strings are expected
			watchers: [
				{
					input_queue: 42
					rules: [
						{
							name: quoteless
							on: true
							make: { queue: null }
						}
					]
				}
			]`, []want{
			{"watchers[0].input_queue", "", "must be a string, not a number"},
			{RulePath(0, 0, "on"), "quoteless", "must be a string, not a boolean"},
			{RulePath(0, 0, "make.queue"), "quoteless", "must be a string, not null"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "c.json"
			}
			c, err := LoadBytes(path, []byte(tt.data))
			if c != nil {
				t.Errorf("got a Config with problems: %+v", c)
			}
			assertProblems(t, err, path, tt.want)
		})
	}
}

// assertProblems checks that err is Problems of file matching want, in order.
func assertProblems(t *testing.T, err error, file string, want []want) {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got error %v (%T), want Problems", err, err)
	}
	ok := len(ps) == len(want)
	for i := range min(len(ps), len(want)) {
		p, w := ps[i], want[i]
		ok = ok && p.File == file && p.Path == w.path && p.Rule == w.rule && strings.Contains(p.Message, w.msg)
	}
	if !ok {
		t.Errorf("got problems:\n%s\nwant:", ps.Error())
		for _, w := range want {
			t.Errorf("  %s: %s (rule %q): ...%s...", file, w.path, w.rule, w.msg)
		}
	}
}

func TestProblemsError(t *testing.T) {
	_, err := LoadBytes("c.json", []byte(inRule(`{"name":"r","on":"^a$","make":{}}`)+` `))
	const want = `c.json: watchers[0].rules[0].make.queue (rule "r"): is required`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func FuzzLoad(f *testing.F) {
	for _, path := range []string{"testdata/resc/complexe-conf.json", "testdata/resc/demo.conf.json"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(inMake(`[{"name":true,"task":"","queue":"","set":""},["q"]]`)))
	f.Add([]byte(`{"watchers":[],"watchers":{"a":[1,2,{"b":null}]}}`))
	f.Add([]byte("{\"a\": 1 2}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "conf.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		check := func(path string, c *Config, err error) {
			var ps Problems
			switch {
			case err == nil && c == nil:
				t.Fatalf("%s: no Config and no error", path)
			case err == nil:
				if len(c.Watchers) == 0 {
					t.Fatalf("%s: loaded without watchers", path)
				}
			case c != nil:
				t.Fatalf("%s: a Config and an error: %v", path, err)
			case !errors.As(err, &ps) || len(ps) == 0:
				t.Fatalf("%s: error %v is not Problems", path, err)
			}
		}
		c, err := Load(path)
		check(path, c, err)
		// The same bytes as Hjson, a superset of JSON, must not panic either.
		c, err = LoadBytes("conf.hjson", data)
		check("conf.hjson", c, err)
	})
}

func TestMakerPath(t *testing.T) {
	data := `{redis: {url: "redis://h/"}, watchers: [{input_queue: "in", rules: [
		{on: "a", make: {queue: "q"}},
		{on: "b", todo: {queue: "q"}},
		{on: "c", makers: [{queue: "q"}, {queue: "r"}]}
	]}]}`
	c, err := LoadBytes("c.hjson", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	rs := c.Watchers[0].Rules
	got := []string{rs[0].Make[0].Path, rs[1].Make[0].Path, rs[2].Make[0].Path, rs[2].Make[1].Path}
	want := []string{"watchers[0].rules[0].make", "watchers[0].rules[1].todo", "watchers[0].rules[2].makers[0]", "watchers[0].rules[2].makers[1]"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paths %q, want %q", got, want)
	}
}

// TestFetcherSettings: each fetcher has the top-level fetch settings with
// its own keys over them, whichever comes first in the file.
func TestFetcherSettings(t *testing.T) {
	data := `{
		redis: {url: "redis://h/"}
		watchers: [{input_queue: "in", rules: [{
			on: "^a$"
			fetchers: [
				{url: "http://h/1", returns: "a"}
				{url: "http://h/2", returns: "b", escape: false, timeout_ms: 250, retries: 0, breaker_failures: 0}
				{url: "http://h/3", returns: "c", escape: true, max_body_bytes: 10, backoff_min_ms: 1, backoff_max_ms: 9,
				 breaker_open_ms: 100, breaker_half_open_requests: 3}
			]
			make: {queue: "q"}
		}]}]
		fetch: {timeout_ms: 5000, retries: 7, backoff_max_ms: 4000, breaker_failures: 2}
	}`
	c, err := LoadBytes("c.hjson", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	global := DefaultFetchSettings()
	global.Timeout, global.Retries, global.BackoffMax, global.BreakerFailures = 5*time.Second, 7, 4*time.Second, 2
	if c.Fetch != global {
		t.Errorf("Fetch = %+v, want %+v", c.Fetch, global)
	}
	second, third := global, global
	second.Timeout, second.Retries, second.BreakerFailures = 250*time.Millisecond, 0, 0
	third.MaxBody, third.BackoffMin, third.BackoffMax = 10, time.Millisecond, 9*time.Millisecond
	third.BreakerOpen, third.BreakerHalfOpen = 100*time.Millisecond, 3
	p := RulePath(0, 0, "fetchers")
	want := []Fetcher{
		{Path: p + "[0]", URL: "http://h/1", Returns: "a", Settings: global},
		{Path: p + "[1]", URL: "http://h/2", Returns: "b", Raw: true, Settings: second},
		{Path: p + "[2]", URL: "http://h/3", Returns: "c", Settings: third},
	}
	if got := c.Watchers[0].Rules[0].Fetch; !reflect.DeepEqual(got, want) {
		t.Errorf("fetchers\n%+v\nwant\n%+v", got, want)
	}
}

func TestRescheduleSettings(t *testing.T) {
	c, err := LoadBytes("c.hjson", []byte(`{redis: {url: "redis://h/"}, fetch: {attempts: 3, reschedule_delay_ms: 100, reschedule_max_delay_ms: 900}, watchers: [{input_queue: "in", rules: [{on: "a", make: {queue: "q"}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (RescheduleSettings{Attempts: 3, Delay: 100 * time.Millisecond, MaxDelay: 900 * time.Millisecond}); c.Reschedule != want {
		t.Errorf("Reschedule = %+v, want %+v", c.Reschedule, want)
	}
}

func TestClusterSettings(t *testing.T) {
	data := `{redis: {url: "redis://h/"}, cluster: {heartbeat_interval_ms: 100, dead_after_ms: 500, leader_ttl_ms: 400, scan_interval_ms: 50, replay_delay_ms: 20, max_replays: 0, dead_retention_ms: 0},
		watchers: [{input_queue: "in", rules: [{on: "a", make: {queue: "q"}}]}]}`
	c, err := LoadBytes("c.hjson", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := ClusterSettings{HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 500 * time.Millisecond, LeaderTTL: 400 * time.Millisecond,
		ScanInterval: 50 * time.Millisecond, ReplayDelay: 20 * time.Millisecond, MaxReplays: 0, DeadRetention: 0}
	if c.Cluster != want {
		t.Errorf("Cluster = %+v, want %+v", c.Cluster, want)
	}
	c, err = LoadBytes("c.hjson", []byte(`{redis: {url: "redis://h/"}, watchers: [{input_queue: "in", rules: [{on: "a", make: {queue: "q"}}]}]}`))
	if err != nil || c.Cluster.DeadRetention != DefaultDeadRetention {
		t.Errorf("no cluster object: err %v, dead retention %v, want the default %v", err, c.Cluster.DeadRetention, DefaultDeadRetention)
	}
	_, err = LoadBytes("c.hjson", []byte(`{redis: {url: "redis://h/"}, cluster: {dead_after_ms: 0, max_replays: -1, beat: 1, dead_retention_ms: -5},
		watchers: [{input_queue: "in", rules: [{on: "a", make: {queue: "q"}}]}]}`))
	for _, want := range []string{"cluster.dead_after_ms", "cluster.max_replays", `cluster.beat: unknown key "beat"`, "cluster.dead_retention_ms"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to name %s", err, want)
		}
	}
}

func TestClusterDefaults(t *testing.T) {
	c, err := LoadBytes("c.hjson", []byte(`{watchers: [{input_queue: "in", rules: [{on: "a", make: {queue: "q"}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != DefaultClusterSettings() {
		t.Errorf("Cluster = %+v, want the defaults %+v", c.Cluster, DefaultClusterSettings())
	}
	c, err = LoadBytes("c.hjson", []byte(`{cluster: {dead_after_ms: 9000}, watchers: [{input_queue: "in", rules: [{on: "a", make: {queue: "q"}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultClusterSettings()
	want.DeadAfter = 9 * time.Second
	if c.Cluster != want {
		t.Errorf("Cluster = %+v, want %+v", c.Cluster, want)
	}
}

// TestClusterRelations: a heartbeat of half dead_after or more is reported
// at the key the file gave, in the configuration's words.
func TestClusterRelations(t *testing.T) {
	const msg = "must be below half of dead_after_ms"
	for _, tt := range []struct {
		cluster string
		path    string // "" when accepted
		text    string
	}{
		{`{heartbeat_interval_ms: 3000}`, "cluster.heartbeat_interval_ms", "heartbeat_interval_ms (3000) " + msg + " (5000)"},
		{`{heartbeat_interval_ms: 2499}`, "", ""},
		{`{heartbeat_interval_ms: 2500}`, "cluster.heartbeat_interval_ms", "heartbeat_interval_ms (2500) " + msg + " (5000)"},
		{`{dead_after_ms: 2000}`, "cluster.dead_after_ms", "heartbeat_interval_ms (1000) " + msg + " (2000)"},
		{`{dead_after_ms: 2001}`, "", ""},
		{`{heartbeat_interval_ms: 100, dead_after_ms: 200}`, "cluster.heartbeat_interval_ms", "heartbeat_interval_ms (100) " + msg + " (200)"},
		{`{heartbeat_interval_ms: 1, dead_after_ms: 3}`, "", ""},
	} {
		_, err := LoadBytes("c.hjson", []byte(`{cluster: `+tt.cluster+`, watchers: [{input_queue: "in", rules: [{on: "a", make: {queue: "q"}}]}]}`))
		if tt.path == "" {
			if err != nil {
				t.Errorf("cluster %s: %v, want it accepted", tt.cluster, err)
			}
			continue
		}
		var ps Problems
		if !errors.As(err, &ps) || len(ps) != 1 {
			t.Errorf("cluster %s: error %v, want one problem", tt.cluster, err)
			continue
		}
		if ps[0].Path != tt.path || !strings.HasPrefix(ps[0].Message, tt.text) {
			t.Errorf("cluster %s: problem %q at %q, want %q at %q", tt.cluster, ps[0].Message, ps[0].Path, tt.text, tt.path)
		}
	}
}

// TestRedisURLMessagesHidePassword: a Redis URL quoted in a configuration
// problem never shows its password.
func TestRedisURLMessagesHidePassword(t *testing.T) {
	for _, text := range []string{
		`{redis: {url: "http://u:s3cret@h:6379"}, watchers: [{input_queue: "in", rules: [{on: "^a$", make: {queue: "q"}}]}]}`,
		`{redis: {url: "redis://u:s3cret@h:6379"}, watchers: [{input_queue: "in", redis: {url: "redis://u:0ther5ecret@g:6379"}, rules: [{on: "^a$", make: {queue: "q"}}]}]}`,
	} {
		_, err := LoadBytes("c.hjson", []byte(text))
		if err == nil {
			t.Fatalf("%s: accepted, want a problem", text)
		}
		if msg := err.Error(); strings.Contains(msg, "s3cret") || strings.Contains(msg, "0ther5ecret") || !strings.Contains(msg, "xxxxx") {
			t.Errorf("%s: %s: the password shows, or is not masked", text, msg)
		}
	}
}
