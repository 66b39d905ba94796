package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resc-go/resc/internal/redistest"
)

// TestUISettingsRefused: every bad console setting is a usage error
// (exit 2) saying what is wrong, before anything contacts Redis.
func TestUISettingsRefused(t *testing.T) {
	redisURL, assertNoConnection := silentRedis(t)
	good := writeConfig(t, "c.hjson", `{redis: {url: "`+redisURL+`"}, watchers: [{input_queue: "in", rules: [{on: "^a$", make: {queue: "q"}}]}]}`)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	weakFile := filepath.Join(t.TempDir(), "weak")
	if err := os.WriteFile(weakFile, []byte("aaaaaaaaaaaaaaab\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		env     map[string]string
		args    []string
		message string
	}{
		{map[string]string{"RESC_UI": "maybe"}, []string{"run", good}, `bad RESC_UI "maybe"`},
		{nil, []string{"run", "--ui", "--http-addr", "off", good}, "--ui needs an HTTP address"},
		{map[string]string{"RESC_PPROF": "sometimes"}, []string{"run", good}, `bad RESC_PPROF "sometimes"`},
		{map[string]string{"RESC_UI_TOKEN": "short"}, []string{"run", "--ui", "--http-addr", "127.0.0.1:0", good}, "RESC_UI_TOKEN is 5 characters long"},
		{map[string]string{"RESC_UI_TOKEN": "0000000000000000"}, []string{"run", "--ui", "--http-addr", "127.0.0.1:0", good}, "RESC_UI_TOKEN is one character repeated"},
		{map[string]string{"RESC_UI_TOKEN": strings.Repeat(" ", 16)}, []string{"ui", "--http-addr", "127.0.0.1:0", good}, "RESC_UI_TOKEN is one character repeated"},
		{map[string]string{"RESC_UI_TOKEN": "passwordpassword"}, []string{"ui", "--http-addr", "127.0.0.1:0", good}, "RESC_UI_TOKEN is a string of 8 characters repeated"},
		{map[string]string{"RESC_UI_TOKEN_FILE": weakFile}, []string{"run", "--ui", "--http-addr", "127.0.0.1:0", good}, "the token of RESC_UI_TOKEN_FILE " + weakFile + " is too easy to guess (about 5 bits"},
		{map[string]string{"RESC_UI_TOKEN": strings.Repeat("t", 20), "RESC_UI_TOKEN_FILE": tokenFile}, []string{"ui", "--http-addr", "127.0.0.1:0", good}, "RESC_UI_TOKEN and RESC_UI_TOKEN_FILE are both set"},
		{map[string]string{"RESC_UI_TOKEN_FILE": tokenFile}, []string{"ui", "--http-addr", "127.0.0.1:0", good}, "RESC_UI_TOKEN_FILE " + tokenFile + " is empty"},
		{map[string]string{"RESC_UI_JAEGER_URL": "jaeger:16686"}, []string{"ui", "--http-addr", "127.0.0.1:0", good}, `bad RESC_UI_JAEGER_URL "jaeger:16686"`},
		{map[string]string{"RESC_UI_INTERVAL": "1ms"}, []string{"ui", "--http-addr", "127.0.0.1:0", good}, `bad RESC_UI_INTERVAL "1ms"`},
	}
	for _, tt := range tests {
		t.Run(tt.message, func(t *testing.T) { expectExit(t, tt.env, tt.args, 2, tt.message, true) })
	}
	assertNoConnection()
}

// expectExit runs resc with args under env alone (the rest cleared) and
// checks that it exits with code and the message want, or a message
// starting with want when prefix is set.
func expectExit(t *testing.T, env map[string]string, args []string, code int, want string, prefix bool) {
	t.Helper()
	clearEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	_, stderr, err := runCmd(t, args...)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != code || !(ee.msg == want || prefix && strings.HasPrefix(ee.msg, want)) {
		t.Errorf("%v %q: err = %#v, want code %d and the message %q (prefix: %v); stderr:\n%s", env, args, err, code, want, prefix, stderr)
	}
}

// TestRedactedURL: a Redis URL's password never reaches a message.
func TestRedactedURL(t *testing.T) {
	clearEnv(t)
	_, stderr, err := runCmd(t, "status", "--redis-url", "redis://u:pw-1@h:port:x/", writeConfig(t, "c.hjson", `{watchers: [{input_queue: "in", rules: [{on: "^a$", make: {queue: "q"}}]}]}`))
	if err == nil || strings.Contains(err.Error(), "pw-1") || strings.Contains(stderr, "pw-1") {
		t.Errorf("bad URL: err %v, stderr %q: want an error without the password", err, stderr)
	}
}

// TestWeakToken: tokens a guess finds are weak, with the reason; random
// ones of 16 characters and more, and the made-up one of
// RESC_UI_TOKEN=auto, are not.
func TestWeakToken(t *testing.T) {
	for token, want := range map[string]string{
		"0000000000000000":             "is one character repeated",
		strings.Repeat(" ", 16):        "is one character repeated",
		"abababababababab":             "is a string of 2 characters repeated",
		"0123456701234567":             "is a string of 8 characters repeated",
		"abcabcabcabcabcabca":          "is a string of 3 characters repeated",
		"aaaaaaaaaaaaaaab":             "is too easy to guess (about 5 bits of entropy estimated from its characters",
		"aaaaaaaabbbbbbbb":             "is too easy to guess (about 16 bits",
		"0123456789abcde":              "is 15 characters long: use at least 16",
		"ééééééééééééééé":              "is 15 characters long",
		"0123456789abcdef":             "is too easy to guess",
		"1234567890123456":             "is too easy to guess",
		"password12345678":             "is too easy to guess",
		"Passw0rd!Passw0rd!":           "is a string of 9 characters repeated",
		"QWERTYqwerty2026":             "is too easy to guess",
		"correct horse battery staple": "",
		"Tr0ub4dor&3-xyzzy":            "",
	} {
		if got := weakToken(token); !strings.HasPrefix(got, want) || (want == "") != (got == "") {
			t.Errorf("weakToken(%q) = %q, want %q", token, got, want)
		}
	}
	for range 2000 {
		for _, n := range []int{8, 12, 16} { // 16, 24 (auto) and 32 hex characters
			b := make([]byte, n)
			_, _ = rand.Read(b)
			if tok := hex.EncodeToString(b); weakToken(tok) != "" {
				t.Errorf("random token %q refused: %s", tok, weakToken(tok))
			}
		}
	}
}

// TestHTTPAddrRefusedNamesItsSetting: an address that cannot be listened
// on is refused (exit 1) naming the setting that gave it, flag, variable
// or configuration key, and why; not as "telemetry: http address".
func TestHTTPAddrRefusedNamesItsSetting(t *testing.T) {
	redisURL, assertNoConnection := silentRedis(t)
	cfgText := func(top string) string {
		return `{redis: {url: "` + redisURL + `"}, ` + top + ` watchers: [{input_queue: "in", rules: [{on: "^a$", make: {queue: "q"}}]}]}`
	}
	good := writeConfig(t, "c.hjson", cfgText(""))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	// An impossible address in the file is a configuration problem (check
	// reports it); one that is taken can only be found by listening.
	withAddr := writeConfig(t, "addr.hjson", cfgText(`http_addr: "`+busy.Addr().String()+`",`))
	inUse := fmt.Sprintf("cannot listen on %q (%%s): listen tcp %s: bind: address already in use", busy.Addr(), busy.Addr())
	const invalid = `cannot listen on "127.0.0.1:99999" (%s): listen tcp: address 99999: invalid port`
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"run", "--http-addr", "127.0.0.1:99999", good}, fmt.Sprintf(invalid, "--http-addr")},
		{map[string]string{"RESC_HTTP_ADDR": "127.0.0.1:99999"}, []string{"run", good}, fmt.Sprintf(invalid, "RESC_HTTP_ADDR")},
		{map[string]string{"RESC_HTTP_ADDR": "127.0.0.1:99999"}, []string{"run", "--http-addr", busy.Addr().String(), good},
			fmt.Sprintf(inUse, "--http-addr")},
		{nil, []string{"run", withAddr}, fmt.Sprintf(inUse, "http_addr in "+withAddr)},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) { expectExit(t, tt.env, tt.args, 1, tt.want, false) })
	}
	assertNoConnection()
}

// TestUIAddrRefusedNamesItsSetting: the same for `resc ui`, whose address
// is --http-addr or RESC_UI_ADDR.
func TestUIAddrRefusedNamesItsSetting(t *testing.T) {
	srv := redistest.Start(t)
	cfg := writeConfig(t, "c.hjson", `{redis: {url: "`+srv.URL()+`"}, watchers: [{input_queue: "in", rules: [{on: "^a$", make: {queue: "q"}}]}]}`)
	for _, tt := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"ui", "--http-addr", "nowhere", cfg}, `cannot listen on "nowhere" (--http-addr): listen tcp: address nowhere: missing port in address`},
		{map[string]string{"RESC_UI_ADDR": "nowhere"}, []string{"ui", cfg}, `cannot listen on "nowhere" (RESC_UI_ADDR): listen tcp: address nowhere: missing port in address`},
	} {
		expectExit(t, tt.env, tt.args, 1, tt.want, false)
	}
}
