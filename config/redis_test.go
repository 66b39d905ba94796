package config

import (
	"reflect"
	"strings"
	"testing"
)

const oneWatcher = `watchers: [{input_queue: "in", rules: [{on: "a", make: {queue: "q"}}]}]`

func TestRedisSettings(t *testing.T) {
	data := `{redis: {url: "rediss://h:6380/0", username: "resc", password_file: "/run/secrets/redis", mode: "single",
		tls: {ca_file: "ca.pem", cert_file: "c.pem", key_file: "k.pem", server_name: "redis.internal", insecure_skip_verify: false},
		sentinel: {master_name: "mymaster", addrs: ["s1:26379", "s2:26379"], username: "sent", password: "sp"}},
		` + oneWatcher + `}`
	c, err := LoadBytes("c.hjson", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := RedisSettings{
		Username: "resc", PasswordFile: "/run/secrets/redis", Mode: RedisModeSingle,
		TLS:      TLSSettings{CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem", ServerName: "redis.internal"},
		Sentinel: SentinelSettings{MasterName: "mymaster", Addrs: []string{"s1:26379", "s2:26379"}, Username: "sent", Password: "sp"},
	}
	if !reflect.DeepEqual(c.Redis, want) {
		t.Errorf("Redis = %+v\nwant    %+v", c.Redis, want)
	}
	if c.RedisURL != "rediss://h:6380/0" {
		t.Errorf("RedisURL = %q", c.RedisURL)
	}
}

func TestRedisSettingsProblems(t *testing.T) {
	for _, tt := range []struct{ redis, want string }{
		{`{url: "redis://h/", mode: "sharded"}`, `redis.mode: must be "auto", "single" or "cluster", not "sharded"`},
		{`{url: "redis://h/", password: "a", password_file: "f"}`, "redis: give password or password_file, not both"},
		{`{url: "redis://h/", tls: {cert_file: "c.pem"}}`, "redis.tls: cert_file and key_file go together"},
		{`{url: "redis://h/", tls: {insecure_skip_verify: "yes"}}`, "redis.tls.insecure_skip_verify: must be true or false, not a string"},
		{`{url: "redis://h/", tls: {ca: "x"}}`, `redis.tls.ca: unknown key "ca"`},
		{`{url: "redis://h/", sentinel: {addrs: ["s:1"]}}`, "redis.sentinel.master_name: is required"},
		{`{url: "redis://h/", sentinel: {master_name: "m", addrs: []}}`, `redis.sentinel.addrs: must be a non-empty array of "host:port" strings`},
		{`{url: "redis://h/", sentinel: {master_name: "m", addrs: ["s1"]}}`, `redis.sentinel.addrs[0]: "s1" is not host:port`},
		{`{url: "redis://h/", sentinel: {master_name: "m", addrs: ["s:1"]}, mode: "cluster"}`, "redis.mode: a Sentinel-managed primary is not a Redis Cluster"},
		{`{url: "redis://h/?addr=h2:1", sentinel: {master_name: "m", addrs: ["s:1"]}}`, "redis.url: with redis.sentinel, the url gives only"},
		{`{url: "redis://h/", wait: {replicas: 1}}`, `redis.wait: unknown key "wait"`},
		{`{url: "redis://h/", username: ""}`, "redis.username: must not be empty"},
	} {
		_, err := LoadBytes("c.hjson", []byte(`{redis: `+tt.redis+`, `+oneWatcher+`}`))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("redis %s: error %v, want it to hold %q", tt.redis, err, tt.want)
		}
	}
}

// TestWatcherRedisOnlyURL: a watcher's own (deprecated) redis object takes
// only a url; the new keys belong to the top-level one.
func TestWatcherRedisOnlyURL(t *testing.T) {
	_, err := LoadBytes("c.hjson", []byte(`{watchers: [{redis: {url: "redis://h/", password: "p"}, input_queue: "in", rules: [{on: "a", make: {queue: "q"}}]}]}`))
	if err == nil || !strings.Contains(err.Error(), `watchers[0].redis.password: unknown key "password"`) {
		t.Errorf("error %v, want the watcher's password reported as unknown", err)
	}
}
