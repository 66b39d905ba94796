package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/console"
	"github.com/resc-go/resc/inspect"
	"github.com/resc-go/resc/internal/redisconn"
	"github.com/resc-go/resc/telemetry"
)

// defaultUIAddr is where `resc ui` listens: beside a replica's default
// 127.0.0.1:9464 on the same machine.
const defaultUIAddr = "127.0.0.1:9465"

// uiSettings are the console's environment: RESC_UI_TOKEN (or
// RESC_UI_TOKEN_FILE, a file holding it), RESC_UI_JAEGER_URL and
// RESC_UI_INTERVAL. The token is never a flag: it would show in ps.
// RESC_UI_TOKEN=auto asks for one made up at start (see newConsole).
func uiSettings(version string, log *slog.Logger) (console.Options, error) {
	o := console.Options{Version: version, Logger: log, Token: os.Getenv("RESC_UI_TOKEN")}
	if f := os.Getenv("RESC_UI_TOKEN_FILE"); f != "" {
		if o.Token != "" {
			return o, fmt.Errorf("RESC_UI_TOKEN and RESC_UI_TOKEN_FILE are both set: give one")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return o, fmt.Errorf("RESC_UI_TOKEN_FILE: %v", err)
		}
		o.Token = strings.TrimSpace(string(b))
		if o.Token == "" {
			return o, fmt.Errorf("RESC_UI_TOKEN_FILE %s is empty", f)
		}
	}
	if o.Token != "" && o.Token != autoToken {
		if weak := weakToken(o.Token); weak != "" {
			src := "RESC_UI_TOKEN"
			if f := os.Getenv("RESC_UI_TOKEN_FILE"); f != "" {
				src = "the token of RESC_UI_TOKEN_FILE " + f
			}
			return o, fmt.Errorf("%s %s: make one with openssl rand -hex 16, or set RESC_UI_TOKEN=auto for one made up at start", src, weak)
		}
	}
	if j := os.Getenv("RESC_UI_JAEGER_URL"); j != "" {
		u, err := url.Parse(j)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return o, fmt.Errorf("bad RESC_UI_JAEGER_URL %q: want the Jaeger UI's address, like http://127.0.0.1:16686", j)
		}
		o.JaegerURL = j
	}
	if v := os.Getenv("RESC_UI_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond {
			return o, fmt.Errorf("bad RESC_UI_INTERVAL %q: want a duration of at least 100ms like 5s", v)
		}
		o.Interval = d
	}
	return o, nil
}

// minTokenBits is the least entropy weakToken accepts, as it estimates
// it. A random 16-character hex token, the shortest that is accepted and
// that openssl makes, estimates at 30 bits or more (200,000 draws); 2^28
// guesses take years at the console's limit of failed logins (3,600 an
// hour at most).
const minTokenBits = 28

// weakToken says why a console token is too easy to guess, or "": fewer
// than 16 characters, one character repeated, a shorter string repeated,
// or too little entropy estimated from its characters (their frequencies
// in the shortest string it repeats, times that string's length). The
// reason never quotes the token.
func weakToken(token string) string {
	r := []rune(token)
	if len(r) < 16 {
		return fmt.Sprintf("is %d characters long: use at least 16", len(r))
	}
	unit := r[:repeatPeriod(r)]
	switch {
	case len(unit) == 1:
		return "is one character repeated"
	case len(unit) <= len(r)/2:
		return fmt.Sprintf("is a string of %d characters repeated", len(unit))
	}
	guessable := unpredictable(unit)
	counts := map[rune]int{}
	for _, c := range guessable {
		counts[c]++
	}
	bits := 0.0
	for _, n := range counts {
		p := float64(n) / float64(len(guessable))
		bits -= float64(n) * math.Log2(p)
	}
	if bits < minTokenBits {
		return fmt.Sprintf("is too easy to guess (about %.0f bits of entropy estimated from its characters, common words and runs like 1234 or abcd counted as one, want %d)", bits, minTokenBits)
	}
	return ""
}

// commonWords are the words a guesser tries first; weakToken counts each as
// one character.
var commonWords = []string{"password", "passw0rd", "qwerty", "azerty", "letmein", "welcome", "changeme", "change-me", "secret", "admin", "token", "resc", "redis", "login"}

// unpredictable is r with what a guesser gets for free left out: a common
// word (commonWords, any case) becomes one character, and a run of
// characters climbing or falling by one ("1234", "abcd", "9876") keeps only
// its first two.
func unpredictable(r []rune) []rune {
	lower := []rune(strings.ToLower(string(r)))
	var out []rune
	afterWord := 0 // where the characters after the last word start
	for i := 0; i < len(r); i++ {
		word := ""
		for _, w := range commonWords {
			if strings.HasPrefix(string(lower[i:]), w) {
				word = w
				break
			}
		}
		if word != "" {
			out = append(out, 0) // the word, as one character
			i += len([]rune(word)) - 1
			afterWord = i + 1
			continue
		}
		if i >= 2 && i-2 >= afterWord {
			step := r[i] - r[i-1]
			if (step == 1 || step == -1) && r[i-1]-r[i-2] == step {
				continue // a run: its next character is no surprise
			}
		}
		out = append(out, r[i])
	}
	return out
}

// repeatPeriod is the length of the shortest string that r repeats (the
// last repetition may be cut short), len(r) when it repeats none.
func repeatPeriod(r []rune) int {
	for p := 1; p < len(r); p++ {
		if slices.Equal(r[p:], r[:len(r)-p]) {
			return p
		}
	}
	return len(r)
}

// settingOf names where the value of a flag came from, for messages: the
// flag when given on the command line, else its environment variable when
// set, else fallback (a configuration key, or the default).
func settingOf(fs *flag.FlagSet, name, env, fallback string) string {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	switch {
	case given:
		return "--" + name
	case os.Getenv(env) != "":
		return env
	}
	return fallback
}

// listenFailed words a failure to listen on an HTTP address for the
// operator: the address, the setting it came from (settingOf) and why.
func listenFailed(err error, setting string) error {
	if le, ok := errors.AsType[*telemetry.ListenError](err); ok {
		return &exitError{code: 1, msg: fmt.Sprintf("cannot listen on %q (%s): %v", le.Addr, setting, le.Err)}
	}
	return &exitError{code: 1, msg: err.Error()}
}

// parseBool reads an on/off environment variable.
func parseBool(name, v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "off", "no":
		return false, nil
	case "1", "true", "on", "yes":
		return true, nil
	}
	return false, fmt.Errorf("bad %s %q: use on (1, true) or off (0, false)", name, v)
}

// autoToken, as RESC_UI_TOKEN, asks for a token made up at start and
// printed beside the console's address: what `make run` sets, so that the
// console it prints can repair whichever Redis it found.
const autoToken = "auto"

// newConsole is the console of cfg on rdb, with the environment's
// settings o (uiSettings, read before connecting so that a bad one fails
// at once); with RESC_UI_TOKEN=auto, or trying set (the embedded server)
// and no token given, a token is made up and returned, to be printed with
// the address.
func newConsole(rdb redis.UniversalClient, cfg *config.Config, o console.Options, trying bool) (*console.Console, string, error) {
	made := ""
	if o.Token == autoToken || (o.Token == "" && trying) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		o.Token = hex.EncodeToString(b[:])
		made = o.Token
	}
	c, err := console.New(inspect.New(rdb, cfg, inspect.Options{}), cfg, o)
	return c, made, err
}

// printConsoleURL tells the operator where the console is, and the token
// made up for trying it.
func printConsoleURL(stderr io.Writer, addr, made string) {
	mode := "actions need the value of RESC_UI_TOKEN at Log in"
	switch {
	case made != "":
		mode = "to requeue and drop, log in with the token " + made + " (made up for this run; set RESC_UI_TOKEN to yours)"
	case os.Getenv("RESC_UI_TOKEN") == "" && os.Getenv("RESC_UI_TOKEN_FILE") == "":
		mode = "read-only: set RESC_UI_TOKEN to requeue and drop from it"
	}
	fmt.Fprintf(stderr, "\n  console: http://%s%s\n           %s\n\n", addr, console.Path, mode)
}

// cmdUI is `resc ui [--redis-url URL] [--http-addr ADDR] CONFIG`: the
// console alone, needing only Redis.
func cmdUI(ctx context.Context, args []string, stderr io.Writer) error {
	const usage = "usage: resc ui [--redis-url URL] [--http-addr ADDR] CONFIG"
	fs := newFlags("ui", stderr)
	redisURL := fs.String("redis-url", os.Getenv("RESC_REDIS_URL"), "Redis `URL`, overriding the configuration's")
	addr := fs.String("http-addr", envOr("RESC_UI_ADDR", defaultUIAddr), "`address` to serve the console on")
	pos, err := positional(fs, args, 1, false, usage)
	if err != nil {
		return err
	}
	level, err := telemetry.ParseLevel(os.Getenv("RESC_LOG"))
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	log := telemetry.NewLogger(stderr, level)
	telemetry.RouteRedisLog(log)
	l, err := load(pos[0])
	if err != nil {
		return reportLoad(stderr, err)
	}
	uo, err := uiSettings(version, log)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	pprofOn, err := parseBool("RESC_PPROF", envOr("RESC_PPROF", "on"))
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	rdb, err := connect(ctx, redisconn.Options{URL: cmp.Or(*redisURL, l.cfg.RedisURL), Settings: l.cfg.Redis,
		IOTimeout: opsIOTimeout, Wait: true, Logger: log})
	if err != nil {
		return err
	}
	defer rdb.Close()
	c, made, err := newConsole(rdb.UniversalClient, l.cfg, uo, false)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	srv, err := telemetry.ListenWith(*addr, func(ctx context.Context) error { return rdb.Ping(ctx).Err() }, log, telemetry.ServerOptions{NoPprof: !pprofOn})
	if err != nil {
		return listenFailed(err, settingOf(fs, "http-addr", "RESC_UI_ADDR", "the default of --http-addr and RESC_UI_ADDR"))
	}
	c.Register(srv)
	printConsoleURL(stderr, srv.Addr(), made)
	var g errgroup.Group
	g.Go(func() error { return srv.Run(ctx) })
	g.Go(func() error { return c.Run(ctx) })
	return g.Wait()
}
