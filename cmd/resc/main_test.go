package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// The tests of this file run the commands in-process through runMain; the
// ones of package systest run the built binary.

// writeConfig writes content to a file name in a new temporary directory and
// returns its path.
func writeConfig(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runCmd runs the command line args in-process.
func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = runMain(t.Context(), args, &out, &errb)
	return out.String(), errb.String(), err
}

// exitCode is the exit code main gives err: 0 for nil, the code of an
// *exitError, 1 for any other error.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// clearEnv empties the environment variables the commands read, so that the
// environment of whoever runs the tests cannot change their outcome.
func clearEnv(t *testing.T) {
	for _, name := range []string{"RESC_REPLICA_ID", "RESC_REDIS_URL", "RESC_HTTP_ADDR", "RESC_EMBEDDED", "RESC_DRAIN_TIMEOUT", "RESC_LOG",
		"RESC_PPROF", "RESC_UI", "RESC_UI_TOKEN", "RESC_UI_TOKEN_FILE", "RESC_UI_JAEGER_URL", "RESC_UI_INTERVAL", "RESC_UI_ADDR"} {
		t.Setenv(name, "")
	}
}

// silentRedis is a TCP listener standing for a Redis server that must not be
// contacted: assertNoConnection fails the test if anything connected to it.
func silentRedis(t *testing.T) (url string, assertNoConnection func()) {
	t.Helper()
	addr, assertNoConnection := testutil.SilentListener(t)
	return "redis://" + addr + "/0", assertNoConnection
}

// readmeConfig is resc's README example plus a rule with several make
// entries, as Hjson.
const readmeConfig = `# resc's README example
redis: {
  url: "REDIS_URL"
}
watchers: [
  {
    input_queue: global/done
    rules: [
      {
        name: acquisitions
        on: "^acq/(?P<process_id>\\d+)/(?P<product_id>\\d+)$"
        make: {
          task: trt/${process_id}/${product_id}
          queue: trt/${process_id}/todo
          set: trt/${process_id}/todo-set
        }
      }
      {
        name: audit
        on: "^acq/"
        make: [
          { queue: "audit" }
          { task: "seen ${input_task}", queue: "log" }
        ]
      }
    ]
  }
  {
    input_queue: images
    rules: [
      {
        name: thumbnail
        on: "^image/(?P<id>\\w+)$"
        make: { task: "thumb/${id}", queue: "thumb/todo" }
      }
    ]
  }
]
`

func TestCheckGood(t *testing.T) {
	path := writeConfig(t, "resc.hjson", strings.ReplaceAll(readmeConfig, "REDIS_URL", "redis://127.0.0.1:6379/0"))
	stdout, stderr, err := runCmd(t, "check", path)
	if err != nil {
		t.Fatalf("check: %v; stderr:\n%s", err, stderr)
	}
	if want := path + ": ok: 2 watcher(s), 3 rule(s)\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want nothing", stderr)
	}
}

func TestCheckGoodJSONOneWatcher(t *testing.T) {
	// CRLF line endings, as resc accepts them.
	cfg := strings.Join([]string{
		`{`,
		`  "redis": {"url": "redis://127.0.0.1:6379/"},`,
		`  "watchers": [{"input_queue": "in", "rules": [`,
		`    {"name": "a", "on": "^a/(?P<x>\\d+)$", "make": {"task": "t/${x}", "queue": "q"}},`,
		`    {"on": "^b$", "make": [{"queue": "q1"}, {"queue": "q2"}]}`,
		`  ]}]`,
		`}`,
	}, "\r\n")
	path := writeConfig(t, "resc.json", cfg)
	stdout, stderr, err := runCmd(t, "check", path)
	if err != nil {
		t.Fatalf("check: %v; stderr:\n%s", err, stderr)
	}
	if want := path + ": ok: 1 watcher(s), 2 rule(s)\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
}

func TestCheckWarning(t *testing.T) {
	cfg := `{
  redis: { url: "redis://127.0.0.1:6379/" }
  task_set: old-set
  watchers: [
    {
      input_queue: in
      rules: [ { on: "^a$", make: { queue: "q" } } ]
    }
  ]
}`
	path := writeConfig(t, "old.hjson", cfg)
	stdout, stderr, err := runCmd(t, "check", path)
	if err != nil {
		t.Fatalf("check: %v; stderr:\n%s", err, stderr)
	}
	if want := path + ": ok: 1 watcher(s), 1 rule(s)\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	if want := "warning: " + path + ": task_set: task_set is ignored"; !strings.HasPrefix(stderr, want) {
		t.Errorf("stderr = %q, want it to start with %q", stderr, want)
	}
}

// rule is one rule of a broken configuration, in Hjson.
func rule(name, on, make string) string {
	return fmt.Sprintf("      {\n        name: %s\n        on: %q\n        make: %s\n      }\n", name, on, make)
}

// watcherCfg is a watcher of a broken configuration, in Hjson.
func watcherCfg(extra string, rules ...string) string {
	return "  {\n    input_queue: in\n" + extra + "    rules: [\n" + strings.Join(rules, "") + "    ]\n  }\n"
}

func hjsonCfg(watchers ...string) string {
	return "redis: { url: \"redis://127.0.0.1:6379/0\" }\nwatchers: [\n" + strings.Join(watchers, "") + "]\n"
}

func TestCheckBroken(t *testing.T) {
	badRegex := rule("bad-re", `^acq/(?P<id>\d+`, `{ queue: "q" }`)
	undefinedVar := rule("undef", `^x/(?P<id>\d+)$`, `{ task: "t/${nope}", queue: "q" }`)
	missingQueue := rule("noqueue", `^y$`, `{ task: "t" }`)
	good := rule("good", `^z$`, `{ queue: "q" }`)
	tests := []struct {
		name    string
		file    string // file name, for its extension
		content string
		// want are the problem lines, in order, with FILE for the file's
		// path; each is a prefix of its line.
		want []string
	}{
		{
			name:    "bad regex",
			file:    "c.hjson",
			content: hjsonCfg(watcherCfg("", good, badRegex)),
			want:    []string{"FILE: watchers[0].rules[1].on (rule \"bad-re\"): invalid regular expression: missing closing ): the ( at byte 5 is never closed: `^acq/(?P<id>\\d+`"},
		},
		{
			name:    "undefined variable",
			file:    "c.hjson",
			content: hjsonCfg(watcherCfg("", undefinedVar)),
			want:    []string{`FILE: watchers[0].rules[0].make.task (rule "undef"): unknown variable ${nope}: defined are input_task, id`},
		},
		{
			name:    "missing queue",
			file:    "c.hjson",
			content: hjsonCfg(watcherCfg("", missingQueue)),
			want:    []string{`FILE: watchers[0].rules[0].make.queue (rule "noqueue"): is required`},
		},
		{
			name:    "unknown key",
			file:    "c.hjson",
			content: hjsonCfg(watcherCfg("    colour: blue\n", good)),
			want:    []string{`FILE: watchers[0].colour: unknown key "colour"`},
		},
		{
			name:    "unknown extension",
			file:    "c.yaml",
			content: hjsonCfg(watcherCfg("", good)),
			want:    []string{`FILE: unknown file extension ".yaml": use .json or .hjson`},
		},
		{
			name:    "JSON syntax error",
			file:    "c.json",
			content: `{"watchers": [}`,
			want:    []string{`FILE: syntax error at line 1, column `},
		},
		{
			name:    "empty file",
			file:    "c.json",
			content: " \n",
			want:    []string{`FILE: the file is empty`},
		},
		{
			name: "several structural problems",
			file: "c.hjson",
			content: hjsonCfg(
				watcherCfg("    colour: blue\n", missingQueue),
				"  {\n    rules: [\n"+good+"    ]\n  }\n",
			),
			// In file order: colour comes before the rules.
			want: []string{
				`FILE: watchers[0].colour: unknown key "colour"`,
				`FILE: watchers[0].rules[0].make.queue (rule "noqueue"): is required`,
				`FILE: watchers[1].input_queue: is required`,
			},
		},
		{
			name: "several rule problems, two watchers",
			file: "c.hjson",
			content: hjsonCfg(
				watcherCfg("", badRegex, good, undefinedVar),
				strings.Replace(watcherCfg("", rule("late", `^(?P<a>x)$`, `{ queue: "q/${a}/${b}/${c}" }`)), "input_queue: in", "input_queue: in2", 1),
			),
			want: []string{
				"FILE: watchers[0].rules[0].on (rule \"bad-re\"): invalid regular expression",
				`FILE: watchers[0].rules[2].make.task (rule "undef"): unknown variable ${nope}`,
				`FILE: watchers[1].rules[0].make.queue (rule "late"): unknown variable ${b}: defined are input_task, a`,
				`FILE: watchers[1].rules[0].make.queue (rule "late"): unknown variable ${c}: defined are input_task, a`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.file, tt.content)
			stdout, stderr, err := runCmd(t, "check", path)
			assertProblems(t, err, stderr, path, tt.want)
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

// assertProblems checks that err is the exit error of a bad configuration
// and that stderr lists exactly the problems want (prefixes of the lines,
// FILE standing for path), in order.
func assertProblems(t *testing.T, err error, stderr, path string, want []string) {
	t.Helper()
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("err = %#v, want an *exitError with code 1; stderr:\n%s", err, stderr)
	}
	if wantMsg := fmt.Sprintf("%d problem(s) in the configuration", len(want)); ee.msg != wantMsg {
		t.Errorf("exit message = %q, want %q", ee.msg, wantMsg)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("stderr has %d line(s), want %d:\n%s", len(lines), len(want), stderr)
	}
	for i, w := range want {
		w = strings.Replace(w, "FILE", path, 1)
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d:\n got %s\nwant %s...", i, lines[i], w)
		}
	}
}

// TestCheckBrokenMixed is a configuration with a structural problem (found
// by config.Load) and a rule problem (found by rules.Compile): `check` must
// list both, the contract being every problem at once.
func TestCheckBrokenMixed(t *testing.T) {
	content := hjsonCfg(watcherCfg("    colour: blue\n", rule("bad-re", `^acq/(?P<id>\d+`, `{ queue: "q" }`)))
	path := writeConfig(t, "c.hjson", content)
	_, stderr, err := runCmd(t, "check", path)
	assertProblems(t, err, stderr, path, []string{
		`FILE: watchers[0].colour: unknown key "colour"`,
		`FILE: watchers[0].rules[0].on (rule "bad-re"): invalid regular expression`,
	})
}

func TestCheckMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nowhere.hjson")
	_, stderr, err := runCmd(t, "check", path)
	assertProblems(t, err, stderr, path, []string{"FILE: cannot read the file: no such file or directory"})
}

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{{"check"}, {"check", "a.json", "b.json"}, {"check", "--bogus", "a.json"}} {
		_, _, err := runCmd(t, args...)
		if got := exitCode(err); got != 2 {
			t.Errorf("%q: exit code %d (%v), want 2", args, got, err)
		}
	}
}

func TestExplain(t *testing.T) {
	url, assertNoConnection := silentRedis(t)
	path := writeConfig(t, "resc.hjson", strings.ReplaceAll(readmeConfig, "REDIS_URL", url))

	stdout, stderr, err := runCmd(t, "explain", path, "acq/12/345", "image/x", "nothing")
	if err != nil {
		t.Fatalf("explain: %v; stderr:\n%s", err, stderr)
	}
	want := `event "acq/12/345"
  on global/done:
    rule "acquisitions" matches
      vars: input_task="acq/12/345" process_id="12" product_id="345"
      task "trt/12/345" -> queue "trt/12/todo" (deduplicated by set "trt/12/todo-set")
    rule "audit" matches
      vars: input_task="acq/12/345"
      task "acq/12/345" -> queue "audit"
      task "seen acq/12/345" -> queue "log"
  on images: no rule matches
event "image/x"
  on global/done: no rule matches
  on images:
    rule "thumbnail" matches
      vars: input_task="image/x" id="x"
      task "thumb/x" -> queue "thumb/todo"
event "nothing"
  on global/done: no rule matches
  on images: no rule matches
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want nothing", stderr)
	}
	assertNoConnection() // a dry run: Redis is never contacted
}

func TestExplainQueue(t *testing.T) {
	path := writeConfig(t, "resc.hjson", strings.ReplaceAll(readmeConfig, "REDIS_URL", "redis://127.0.0.1:6379/0"))
	want := `event "image/x"
  on images:
    rule "thumbnail" matches
      vars: input_task="image/x" id="x"
      task "thumb/x" -> queue "thumb/todo"
`
	// The flag before or after the configuration.
	for _, args := range [][]string{
		{"explain", "--queue", "images", path, "image/x"},
		{"explain", path, "--queue=images", "image/x"},
	} {
		stdout, stderr, err := runCmd(t, args...)
		if err != nil {
			t.Fatalf("%q: %v; stderr:\n%s", args, err, stderr)
		}
		if stdout != want {
			t.Errorf("%q: stdout:\n%s\nwant:\n%s", args, stdout, want)
		}
	}

	stdout, _, err := runCmd(t, "explain", "--queue", "nope", path, "image/x")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || ee.msg != "no watcher has input queue nope" {
		t.Errorf("unknown queue: err = %#v, want code 2 and \"no watcher has input queue nope\"", err)
	}
	if stdout != "" {
		t.Errorf("unknown queue: stdout = %q, want nothing", stdout)
	}
}

func TestExplainUsage(t *testing.T) {
	path := writeConfig(t, "resc.hjson", strings.ReplaceAll(readmeConfig, "REDIS_URL", "redis://127.0.0.1:6379/0"))
	for _, args := range [][]string{{"explain"}, {"explain", path}, {"explain", "--bogus", path, "x"}} {
		_, _, err := runCmd(t, args...)
		if got := exitCode(err); got != 2 {
			t.Errorf("%q: exit code %d (%v), want 2", args, got, err)
		}
	}
	// A broken configuration is reported as by check.
	bad := writeConfig(t, "bad.hjson", hjsonCfg(watcherCfg("    colour: blue\n", rule("r", "^a$", `{ queue: "q" }`))))
	_, stderr, err := runCmd(t, "explain", bad, "a")
	assertProblems(t, err, stderr, bad, []string{`FILE: watchers[0].colour: unknown key "colour"`})
}

// fetchConfig has a rule enriched by a fetch from base.
const fetchConfig = `{
  redis: { url: "REDIS_URL" }
  watchers: [
    {
      input_queue: products
      rules: [
        {
          name: enrich
          on: "^prod/(?P<id>\\d+)$"
          fetch: [ { url: "BASE/p/${id}", returns: "p" } ]
          make: {
            task: "made/${id}/${p.name}/${p.price}"
            queue: "made/${p.kind}"
          }
        }
        {
          name: plain
          on: "^prod/"
          make: { queue: "all" }
        }
      ]
    }
  ]
}
`

func TestExplainFetch(t *testing.T) {
	var calls atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/p/7":
			fmt.Fprint(w, `{"name": "widget", "kind": "tool", "price": 12.50, "tags": ["ignored"]}`)
		case "/p/8":
			fmt.Fprint(w, `[{"name": "a", "kind": "k1", "price": 1}, {"name": "b", "kind": "k2", "price": 2e3}]`)
		case "/p/9":
			fmt.Fprint(w, `[]`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(api.Close)
	url, assertNoConnection := silentRedis(t)
	cfg := strings.ReplaceAll(strings.ReplaceAll(fetchConfig, "REDIS_URL", url), "BASE", api.URL)
	path := writeConfig(t, "fetch.hjson", cfg)

	t.Run("without --fetch", func(t *testing.T) {
		stdout, stderr, err := runCmd(t, "explain", path, "prod/7")
		if err != nil {
			t.Fatalf("explain: %v; stderr:\n%s", err, stderr)
		}
		want := `event "prod/7"
  on products:
    rule "enrich" matches
      vars: input_task="prod/7" id="7"
      fetch GET ` + api.URL + `/p/7 (not called: use --fetch)
    rule "plain" matches
      vars: input_task="prod/7"
      task "prod/7" -> queue "all"
`
		if stdout != want {
			t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
		}
		if n := calls.Load(); n != 0 {
			t.Errorf("the fetch URL was called %d time(s) without --fetch", n)
		}
	})

	t.Run("with --fetch", func(t *testing.T) {
		stdout, stderr, err := runCmd(t, "explain", "--fetch", path, "prod/7", "prod/8", "prod/9")
		if err != nil {
			t.Fatalf("explain: %v; stderr:\n%s", err, stderr)
		}
		want := `event "prod/7"
  on products:
    rule "enrich" matches
      vars: input_task="prod/7" id="7"
      fetch GET ` + api.URL + `/p/7: 1 result(s)
      task "made/7/widget/12.50" -> queue "made/tool"
    rule "plain" matches
      vars: input_task="prod/7"
      task "prod/7" -> queue "all"
event "prod/8"
  on products:
    rule "enrich" matches
      vars: input_task="prod/8" id="8"
      fetch GET ` + api.URL + `/p/8: 2 result(s)
      task "made/8/a/1" -> queue "made/k1"
      task "made/8/b/2e3" -> queue "made/k2"
    rule "plain" matches
      vars: input_task="prod/8"
      task "prod/8" -> queue "all"
event "prod/9"
  on products:
    rule "enrich" matches
      vars: input_task="prod/9" id="9"
      fetch GET ` + api.URL + `/p/9: 0 result(s)
      makes no task
    rule "plain" matches
      vars: input_task="prod/9"
      task "prod/9" -> queue "all"
`
		if stdout != want {
			t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
		}
		if n := calls.Load(); n != 3 {
			t.Errorf("the fetch URLs were called %d time(s), want 3", n)
		}
	})

	t.Run("failing fetch", func(t *testing.T) {
		stdout, stderr, err := runCmd(t, "explain", path, "--fetch", "prod/404")
		if err != nil {
			t.Fatalf("explain: %v; stderr:\n%s", err, stderr)
		}
		lines := strings.Split(stdout, "\n")
		if len(lines) < 5 {
			t.Fatalf("stdout:\n%s\nwant at least 5 lines", stdout)
		}
		fail := lines[4]
		if !strings.HasPrefix(fail, "      fetch GET "+api.URL+"/p/404 failed: ") ||
			!strings.Contains(fail, "404") ||
			!strings.HasSuffix(fail, "(the event would go to the dead-letter list)") {
			t.Errorf("fetch line = %q, want the URL, the status and the dead-letter list", fail)
		}
		if strings.Contains(stdout, "task ") {
			t.Errorf("an event whose fetch fails makes no task; stdout:\n%s", stdout)
		}
	})
	assertNoConnection()
}

func TestVersionHelpAndUnknown(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		stdout, _, err := runCmd(t, arg)
		if err != nil || stdout != "resc-go dev\n" {
			t.Errorf("%s: stdout %q, err %v; want \"resc-go dev\\n\"", arg, stdout, err)
		}
	}

	stdout, _, err := runCmd(t, "--help")
	if err != nil || !strings.HasPrefix(stdout, "usage:\n") {
		t.Errorf("--help: stdout %q, err %v; want the usage", stdout, err)
	}

	_, stderr, err := runCmd(t)
	if got := exitCode(err); got != 2 {
		t.Errorf("no arguments: exit code %d (%v), want 2", got, err)
	}
	if !strings.HasPrefix(stderr, "usage:\n") {
		t.Errorf("no arguments: stderr %q, want the usage", stderr)
	}

	for _, args := range [][]string{{"frobnicate", "x"}, {"--bogus"}, {"frobnicate", "--x"}} {
		_, stderr, err := runCmd(t, args...)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%q: err = %#v, want code 2", args, err)
			continue
		}
		if want := fmt.Sprintf("unknown command %q", args[0]); ee.msg != want {
			t.Errorf("%q: message %q, want %q", args, ee.msg, want)
		}
		if !strings.HasPrefix(stderr, "usage:\n") {
			t.Errorf("%q: stderr %q, want the usage", args, stderr)
		}
	}
}

func TestPush(t *testing.T) {
	clearEnv(t)
	srv := redistest.Start(t)
	rdb := srv.Client()

	stdout, stderr, err := runCmd(t, "push", "--redis-url", srv.URL(), "in", "a", "b")
	if err != nil {
		t.Fatalf("push: %v; stderr:\n%s", err, stderr)
	}
	if want := "pushed 2 event(s) to in (length now 2)\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	// The URL after the events, and from the environment.
	if _, stderr, err := runCmd(t, "push", "in", "c", "--redis-url", srv.URL()); err != nil {
		t.Fatalf("push: %v; stderr:\n%s", err, stderr)
	}
	t.Setenv("RESC_REDIS_URL", srv.URL())
	if _, stderr, err := runCmd(t, "push", "in", "d"); err != nil {
		t.Fatalf("push with RESC_REDIS_URL: %v; stderr:\n%s", err, stderr)
	}
	got, err := rdb.LRange(t.Context(), "in", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	// LPUSH: the newest at the head, where BRPOPLPUSH takes last.
	if want := []string{"d", "c", "b", "a"}; !slices.Equal(got, want) {
		t.Errorf("LRANGE in = %q, want %q", got, want)
	}

	for _, args := range [][]string{{"push", "in"}, {"push"}, {"push", "--redis-url", "http://x", "in", "e"}} {
		_, _, err := runCmd(t, args...)
		if got := exitCode(err); got != 2 {
			t.Errorf("%q: exit code %d (%v), want 2", args, got, err)
		}
	}

	srv.Stop()
	_, _, err = runCmd(t, "push", "in", "e")
	if err == nil || exitCode(err) != 1 || !strings.HasPrefix(err.Error(), "LPUSH in: ") {
		t.Errorf("push to a stopped server: err = %v, want \"LPUSH in: ...\" with exit code 1", err)
	}
}

// TestRunRefusesBadArguments checks what `run` refuses before it connects
// anywhere.
func TestRunRefusesBadArguments(t *testing.T) {
	clearEnv(t)
	url, assertNoConnection := silentRedis(t)
	good := writeConfig(t, "resc.hjson", strings.ReplaceAll(readmeConfig, "REDIS_URL", url))
	tests := []struct {
		args    []string
		code    int
		message string // prefix of the exit error's message
	}{
		{[]string{"run"}, 2, "usage: resc run [flags] CONFIG"},
		{[]string{"run", good, good}, 2, "usage: resc run [flags] CONFIG"},
		{[]string{"run", "--bogus", good}, 2, ""},
		{[]string{"run", "--drain-timeout", "0s", good}, 2, `bad drain timeout "0s"`},
		{[]string{"run", good, "--drain-timeout=soon"}, 2, `bad drain timeout "soon"`},
		{[]string{"run", good, "--replica-id", "a/b"}, 2, `replica id "a/b"`},
		{[]string{"run", "--replica-id", "a b", good}, 2, `replica id "a b"`},
		{[]string{"run", "--replica-id", strings.Repeat("x", 201), good}, 2, "replica id longer than 200 bytes"},
		{[]string{"run", "--embedded=sometimes", "--replica-id", "r", good}, 2, `bad --embedded "sometimes"`},
		{[]string{"run", "--redis-url", "http://x/", "--replica-id", "r", "--http-addr", "off", good}, 2, `bad Redis URL "http://x/"`},
		{[]string{"run", filepath.Join(t.TempDir(), "missing.json")}, 1, "1 problem(s) in the configuration"},
	}
	for _, tt := range tests {
		_, stderr, err := runCmd(t, tt.args...)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != tt.code || !strings.HasPrefix(ee.msg, tt.message) {
			t.Errorf("%q: err = %#v, want code %d and a message starting with %q; stderr:\n%s", tt.args, err, tt.code, tt.message, stderr)
		}
	}
	t.Run("bad RESC_LOG", func(t *testing.T) {
		t.Setenv("RESC_LOG", "loud")
		_, _, err := runCmd(t, "run", good)
		if got := exitCode(err); got != 2 {
			t.Errorf("RESC_LOG=loud: exit code %d (%v), want 2", got, err)
		}
	})
	assertNoConnection()
}

// TestParseInterleaved checks that flags parse before, between and after the
// positional arguments, as in `resc run CONFIG --replica-id x`.
func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		args    []string
		pos     []string
		replica string
		drain   string
		fetch   bool
	}{
		{args: []string{"CONFIG"}, pos: []string{"CONFIG"}},
		{args: []string{"CONFIG", "--replica-id", "x"}, pos: []string{"CONFIG"}, replica: "x"},
		{args: []string{"--replica-id", "x", "CONFIG"}, pos: []string{"CONFIG"}, replica: "x"},
		{args: []string{"CONFIG", "--replica-id=x", "--drain-timeout", "5s"}, pos: []string{"CONFIG"}, replica: "x", drain: "5s"},
		{args: []string{"-drain-timeout", "1s", "CONFIG", "-replica-id", "y"}, pos: []string{"CONFIG"}, replica: "y", drain: "1s"},
		{args: []string{"CONFIG", "e1", "--fetch", "e2"}, pos: []string{"CONFIG", "e1", "e2"}, fetch: true},
		{args: []string{"CONFIG", "--", "--replica-id", "x"}, pos: []string{"CONFIG", "--replica-id", "x"}},
		{args: []string{"--fetch", "--", "-e"}, pos: []string{"-e"}, fetch: true},
		{args: nil, pos: nil},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		replica := fs.String("replica-id", "", "")
		drain := fs.String("drain-timeout", "", "")
		fetch := fs.Bool("fetch", false, "")
		pos, err := parseInterleaved(fs, tt.args)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if !slices.Equal(pos, tt.pos) || *replica != tt.replica || *drain != tt.drain || *fetch != tt.fetch {
			t.Errorf("%q: positional %q, replica-id %q, drain-timeout %q, fetch %v; want %q, %q, %q, %v",
				tt.args, pos, *replica, *drain, *fetch, tt.pos, tt.replica, tt.drain, tt.fetch)
		}
	}

	for _, args := range [][]string{{"CONFIG", "--unknown"}, {"CONFIG", "--replica-id"}} {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(new(bytes.Buffer))
		fs.String("replica-id", "", "")
		if pos, err := parseInterleaved(fs, args); err == nil {
			t.Errorf("%q: positional %q and no error, want an error", args, pos)
		}
	}
}

func TestLooksLikeConfig(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "resc.conf")
	if err := os.WriteFile(plain, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for arg, want := range map[string]bool{
		"conf.json": true, "x/CONF.HJSON": true, plain: true,
		"frobnicate": false, "--replica-id": false, "": false, dir: false,
	} {
		if got := looksLikeConfig(arg); got != want {
			t.Errorf("looksLikeConfig(%q) = %v, want %v", arg, got, want)
		}
	}
}

// TestRunRefusesWhatCheckReports walks every way a configuration file makes
// `resc run` refuse to start, one kind of problem per case (structure,
// types, ranges, rules, and the settings that depend on two keys: cluster
// timings, fetch backoff bounds, reschedule delays, shared queues; the
// redis object's contradictions and impossible addresses that package
// redisconn would refuse; the HTTP address; the Redis Cluster slot rule
// when the URL lists cluster nodes), and
// checks that `resc check` reports the same problems in the same words:
// run refuses nothing that check accepts. Run stops before it connects to
// Redis. (The cluster timings that config accepts, replica.New accepts too:
// package replica tests that.)
func TestRunRefusesWhatCheckReports(t *testing.T) {
	clearEnv(t)
	url, assertNoConnection := silentRedis(t)
	good := rule("good", `^z$`, `{ queue: "q" }`)
	top := func(extra string) string {
		return "redis: { url: \"" + url + "\" }\n" + extra + "\nwatchers: [\n" + watcherCfg("", good) + "]\n"
	}
	// redisTop is top with more keys in the redis object.
	redisTop := func(keys string) string {
		return strings.Replace(top(""), "\" }", "\", "+keys+" }", 1)
	}
	tests := []struct {
		name, content string
		want          []string // problem lines (prefixes), FILE for the path
	}{
		{"unknown key", top("colour: blue"), []string{`FILE: colour: unknown key "colour"`}},
		{"wrong type", top("key_prefix: 3"), []string{"FILE: key_prefix: must be a string"}},
		{"empty prefix", top(`key_prefix: ""`), []string{"FILE: key_prefix: must not be empty"}},
		{"bad Redis URL", strings.Replace(top(""), url, "http://x/", 1), []string{"FILE: redis.url:"}},
		{"no watcher", "redis: { url: \"" + url + "\" }\nwatchers: []\n", []string{"FILE: watchers:"}},
		{"watcher range", "redis: { url: \"" + url + "\" }\nwatchers: [\n" + watcherCfg("    concurrency: 0\n", good) + "]\n",
			[]string{"FILE: watchers[0].concurrency:"}},
		{"shared input queue", "redis: { url: \"" + url + "\" }\nwatchers: [\n" + watcherCfg("", good) + watcherCfg("", good) + "]\n",
			[]string{"FILE: watchers[1].input_queue:"}},
		{"bad regex", "redis: { url: \"" + url + "\" }\nwatchers: [\n" + watcherCfg("", rule("re", `^(`, `{ queue: "q" }`)) + "]\n",
			[]string{`FILE: watchers[0].rules[0].on (rule "re"): invalid regular expression`}},
		{"undefined variable", "redis: { url: \"" + url + "\" }\nwatchers: [\n" + watcherCfg("", rule("v", `^a$`, `{ queue: "q/${nope}" }`)) + "]\n",
			[]string{`FILE: watchers[0].rules[0].make.queue (rule "v"): unknown variable ${nope}`}},
		{"cluster range", top("cluster: { dead_after_ms: 0 }"), []string{"FILE: cluster.dead_after_ms:"}},
		{"heartbeat vs dead_after", top("cluster: { heartbeat_interval_ms: 3000 }"),
			[]string{"FILE: cluster.heartbeat_interval_ms: heartbeat_interval_ms (3000) must be below half of dead_after_ms (5000)"}},
		{"dead_after vs default heartbeat", top("cluster: { dead_after_ms: 1500 }"),
			[]string{"FILE: cluster.dead_after_ms: heartbeat_interval_ms (1000) must be below half of dead_after_ms (1500)"}},
		{"max_replays range", top("cluster: { max_replays: -1 }"), []string{"FILE: cluster.max_replays:"}},
		{"backoff bounds", top("fetch: { backoff_min_ms: 5000 }"), []string{"FILE: fetch.backoff_min_ms: must be at most backoff_max_ms (2000), not 5000"}},
		{"reschedule delays", top("fetch: { reschedule_delay_ms: 700000 }"),
			[]string{"FILE: fetch.reschedule_delay_ms: reschedule_max_delay_ms (600000) must be at least reschedule_delay_ms (700000)"}},
		{"attempts range", top("fetch: { attempts: 0 }"), []string{"FILE: fetch.attempts:"}},
		// What package redisconn refuses of the redis object before it
		// dials, and what makes a dial impossible.
		{"tls with redis://", redisTop(`tls: { server_name: "r" }`),
			[]string{"FILE: redis.tls: is given but redis.url is redis://, which does not use TLS: use rediss://"}},
		{"port out of range", strings.Replace(top(""), url, "redis://127.0.0.1:99999/0", 1),
			[]string{`FILE: redis.url: the Redis URL cannot be used: port "99999" is not a port number (1 to 65535)`}},
		{"impossible host", strings.Replace(top(""), url, "redis://bad..host:6379/0", 1),
			[]string{`FILE: redis.url: the Redis URL cannot be used: host "bad..host" is not a host name nor an IP address`}},
		{"database not a number", strings.Replace(top(""), url, url+"x", 1),
			[]string{`FILE: redis.url: the Redis URL cannot be used: the database "0x" (the path) must be a number like /0`}},
		{"cluster seed port", strings.Replace(top(""), url, url+"?addr=127.0.0.1:0", 1),
			[]string{`FILE: redis.url: the Redis URL cannot be used: cluster node addr=127.0.0.1:0: port "0" is not a port number (1 to 65535)`}},
		{"seeds in mode single", strings.Replace(redisTop(`mode: "single"`), url, url+"?addr=127.0.0.1:7001", 1),
			[]string{"FILE: redis.mode: is single but redis.url lists several nodes (addr=), which is the Redis Cluster form"}},
		{"sentinel master in the URL", strings.Replace(top(""), url, url+"?master_name=m", 1),
			[]string{"FILE: redis.url: names a Sentinel master (master_name=): give redis.sentinel (master_name, addrs) instead"}},
		{"sentinel address", redisTop(`sentinel: { master_name: "m", addrs: ["127.0.0.1:70000"] }`),
			[]string{`FILE: redis.sentinel.addrs[0]: port "70000" is not a port number (1 to 65535)`}},
		{"sentinel and mode cluster", redisTop(`sentinel: { master_name: "m", addrs: ["127.0.0.1:26379"] }, mode: "cluster"`),
			[]string{"FILE: redis.mode: a Sentinel-managed primary is not a Redis Cluster"}},
		{"cert without key", strings.Replace(redisTop(`tls: { cert_file: "c.pem" }`), "redis://", "rediss://", 1), []string{"FILE: redis.tls: cert_file and key_file go together"}},
		{"http address", top(`http_addr: "localhost"`), []string{`FILE: http_addr: "localhost" is not host:port`}},
		{"http port", top(`http_addr: "127.0.0.1:65536"`), []string{`FILE: http_addr: port "65536" is not a port number (0 to 65535)`}},
		// A URL listing cluster nodes says Redis Cluster by itself: the
		// slot rule applies before anything is dialled.
		{"untagged keys on cluster seeds", strings.Replace(top(""), url, url+"?addr=127.0.0.1:7001", 1),
			[]string{`FILE: watchers[0].input_queue: "in" has no hash tag`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, "resc.hjson", tt.content)
			_, checkErr, err := runCmd(t, "check", path)
			assertProblems(t, err, checkErr, path, tt.want)
			_, runErr, err := runCmd(t, "run", "--replica-id", "r", "--http-addr", "off", path)
			assertProblems(t, err, runErr, path, tt.want)
			if runErr != checkErr {
				t.Errorf("run and check word the problems differently:\nrun:\n%s\ncheck:\n%s", runErr, checkErr)
			}
			assertNoConnection()
		})
	}
}

// TestCheckCluster: --cluster reports the watchers whose keys cannot share
// a slot, naming the key and the fix; a tagged configuration passes.
func TestCheckCluster(t *testing.T) {
	untagged := writeConfig(t, "u.hjson", `{watchers: [{input_queue: "in", rules: [{on: "^a$", make: {queue: "q"}}]}]}`)
	_, stderr, err := runCmd(t, "check", "--cluster", untagged)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(stderr, `watchers[0].input_queue: "in" has no hash tag`) {
		t.Errorf("untagged: err %v, stderr %q: want exit 1 naming the input queue", err, stderr)
	}
	if _, _, err := runCmd(t, "check", untagged); err != nil {
		t.Errorf("without --cluster the slot rule is not checked: %v", err)
	}
	mixed := writeConfig(t, "m.hjson", `{watchers: [{input_queue: "{a}/in", rules: [{on: "^a$", make: {queue: "{b}/q"}}]}]}`)
	_, stderr, err = runCmd(t, "check", "--cluster", mixed)
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(stderr, `the task queue "{b}/q" hashes to slot 3300`) || !strings.Contains(stderr, `e.g. "{a}/q"`) {
		t.Errorf("mixed tags: err %v, stderr %q: want exit 1 naming the queue", err, stderr)
	}
	tagged := writeConfig(t, "t.hjson", `{redis: {mode: "cluster"}, watchers: [{input_queue: "{a}/in", rules: [{on: "^a$", make: {queue: "{a}/q", set: "{a}/s"}}]}]}`)
	stdout, stderr, err := runCmd(t, "check", tagged)
	if err != nil || !strings.Contains(stdout, "each watcher's keys in one Redis Cluster slot") {
		t.Errorf("tagged, mode cluster: err %v, stdout %q, stderr %q", err, stdout, stderr)
	}
}
