package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	tests := []struct {
		env     map[string]string
		args    []string
		message string
	}{
		{map[string]string{"RESC_UI": "maybe"}, []string{"run", good}, `bad RESC_UI "maybe"`},
		{nil, []string{"run", "--ui", "--http-addr", "off", good}, "--ui needs an HTTP address"},
		{map[string]string{"RESC_PPROF": "sometimes"}, []string{"run", good}, `bad RESC_PPROF "sometimes"`},
		{map[string]string{"RESC_UI_TOKEN": "short"}, []string{"run", "--ui", "--http-addr", "127.0.0.1:0", good}, "RESC_UI_TOKEN is 5 characters long"},
		{map[string]string{"RESC_UI_TOKEN": strings.Repeat("t", 20), "RESC_UI_TOKEN_FILE": tokenFile}, []string{"ui", "--http-addr", "127.0.0.1:0", good}, "RESC_UI_TOKEN and RESC_UI_TOKEN_FILE are both set"},
		{map[string]string{"RESC_UI_TOKEN_FILE": tokenFile}, []string{"ui", "--http-addr", "127.0.0.1:0", good}, "RESC_UI_TOKEN_FILE " + tokenFile + " is empty"},
		{map[string]string{"RESC_UI_JAEGER_URL": "jaeger:16686"}, []string{"ui", "--http-addr", "127.0.0.1:0", good}, `bad RESC_UI_JAEGER_URL "jaeger:16686"`},
		{map[string]string{"RESC_UI_INTERVAL": "1ms"}, []string{"ui", "--http-addr", "127.0.0.1:0", good}, `bad RESC_UI_INTERVAL "1ms"`},
	}
	for _, tt := range tests {
		t.Run(tt.message, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, stderr, err := runCmd(t, tt.args...)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 || !strings.HasPrefix(ee.msg, tt.message) {
				t.Errorf("%v %q: err = %#v, want code 2 and a message starting with %q; stderr:\n%s", tt.env, tt.args, err, tt.message, stderr)
			}
		})
	}
	assertNoConnection()
}

// TestRedactedURL: a Redis URL's password never reaches a message.
func TestRedactedURL(t *testing.T) {
	clearEnv(t)
	_, stderr, err := runCmd(t, "status", "--redis-url", "redis://u:pw-1@h:port:x/", writeConfig(t, "c.hjson", `{watchers: [{input_queue: "in", rules: [{on: "^a$", make: {queue: "q"}}]}]}`))
	if err == nil || strings.Contains(err.Error(), "pw-1") || strings.Contains(stderr, "pw-1") {
		t.Errorf("bad URL: err %v, stderr %q: want an error without the password", err, stderr)
	}
}
