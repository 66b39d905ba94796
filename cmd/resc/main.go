// Command resc is resc-go: a Redis task generator compatible with Canop/resc
// configurations, that scales out to any number of replicas.
//
// Usage:
//
//	resc CONFIG [flags]              run (resc's form)
//	resc run [flags] CONFIG          run
//	resc check [--cluster] CONFIG    validate, listing every problem
//	resc explain [--fetch] CONFIG EVENT...   dry run, no Redis write
//	resc push [--redis-url URL] QUEUE EVENT...   LPUSH events (for trying)
//	resc status [--redis-url URL] [--json] CONFIG   replicas, leader, queue lengths
//	resc dead list|requeue|drop [flags] CONFIG   the dead-letter lists
//	resc ui [flags] CONFIG           the operators' web console alone
//	resc --version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries an exit code; its message has been printed already
// when it is empty.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts the graceful stop; a second one, during the
	// drain, kills the process at once (what is in flight stays in the
	// taken list and is replayed when the replica starts again).
	context.AfterFunc(ctx, stop)
	err := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if err.Error() != "" {
			fmt.Fprintln(os.Stderr, "resc:", err)
		}
		os.Exit(code)
	}
}

const usage = `usage:
  resc CONFIG [flags]                          run the service (resc's form)
  resc run [flags] CONFIG                      run the service
  resc check [--cluster] CONFIG                validate CONFIG, listing every problem
  resc explain [--fetch] [--queue Q] CONFIG EVENT...
                                               show what each EVENT would produce (no Redis write)
  resc push [--redis-url URL] QUEUE EVENT...   push events with LPUSH (for trying it out)
  resc status [--redis-url URL] [--json] CONFIG
                                               replicas, leader and queue lengths (read-only)
  resc dead list [--queue Q] [--redis-url URL] [--json] [--limit N] CONFIG
                                               the entries of a dead-letter list, numbered
  resc dead requeue|drop [--queue Q] [--redis-url URL] (--index N... | --all | --match REGEXP) [--dry-run] CONFIG
                                               push entries back to the input queue, or remove them
                                               (requeue --raw: also entries pushed by hand)
  resc ui [--redis-url URL] [--http-addr ADDR] CONFIG
                                               the operators' web console alone (default 127.0.0.1:9465)
  resc --version

run flags (each also read from the environment):
  --replica-id ID      RESC_REPLICA_ID   this replica's id (default: hostname plus a random suffix)
  --redis-url URL      RESC_REDIS_URL    Redis to use, overriding redis.url of CONFIG
  --http-addr ADDR     RESC_HTTP_ADDR    /healthz, /readyz, /metrics, /debug/pprof/ and, with --ui, /ui/
                                         (default 127.0.0.1:9464, "off" for none)
  --embedded MODE      RESC_EMBEDDED     never (default), auto (an in-memory server when the loopback
                                         Redis of CONFIG is not reachable; for trying only), always
  --drain-timeout D    RESC_DRAIN_TIMEOUT  how long in-flight events may finish on SIGTERM (default 30s)
  --ui                 RESC_UI=1         serve the operators' web console at /ui of --http-addr
console (run --ui and ui):
  RESC_UI_TOKEN        the token that allows requeue and drop (at least 16 characters; none: read-only;
                       auto: made up at start and printed with the console's address)
  RESC_UI_TOKEN_FILE   a file holding it, instead
  RESC_UI_JAEGER_URL   Jaeger UI address: dead letters link to their trace
  RESC_UI_INTERVAL     how often the console reads the deployment (default 5s)
  RESC_UI_ADDR         ui: the address, like --http-addr
status and dead flags:
  --redis-url URL      RESC_REDIS_URL    as for run
  --queue Q                              dead: the watcher's input queue (required when CONFIG has several)
environment:
  RESC_LOG             error, warn (default), info or debug
  RESC_PPROF           on (default) or off: the Go profiles at /debug/pprof/ of the HTTP address
  RESC_REDIS_USERNAME, RESC_REDIS_PASSWORD, RESC_REDIS_PASSWORD_FILE, RESC_REDIS_TLS_CA_FILE,
  RESC_REDIS_TLS_CERT_FILE, RESC_REDIS_TLS_KEY_FILE   the Redis user and TLS files (docs/redis.md)
  RESC_TRACE_PARENT, RESC_TRACE_CONTEXT_TTL, OTEL_*    traces (docs/telemetry.md)
every command, flag, variable and exit code: docs/cli.md
`

// runMain dispatches the subcommands; it returns an *exitError for a
// non-zero exit code.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, "resc-go", version)
		return nil
	case "run":
		return cmdRun(ctx, args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "explain":
		return cmdExplain(ctx, args[1:], stdout, stderr)
	case "push":
		return cmdPush(ctx, args[1:], stdout, stderr)
	case "status":
		return cmdStatus(ctx, args[1:], stdout, stderr)
	case "dead":
		return cmdDead(ctx, args[1:], stdout, stderr)
	case "ui":
		return cmdUI(ctx, args[1:], stderr)
	}
	if looksLikeConfig(args[0]) {
		return cmdRun(ctx, args, stderr) // resc CONFIG [flags]
	}
	fmt.Fprint(stderr, usage)
	return &exitError{code: 2, msg: fmt.Sprintf("unknown command %q", args[0])}
}

// looksLikeConfig tells resc's form `resc CONFIG` from a mistyped command:
// a configuration has a .json or .hjson extension, or is an existing file.
func looksLikeConfig(arg string) bool {
	if arg == "" || arg[0] == '-' {
		return false
	}
	switch strings.ToLower(filepath.Ext(arg)) {
	case ".json", ".hjson":
		return true
	}
	st, err := os.Stat(arg)
	return err == nil && st.Mode().IsRegular()
}
