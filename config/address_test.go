package config

import (
	"strings"
	"testing"
)

// TestCheckRedisURL: the URLs a dial can use pass, including the forms
// deployments use (container names with '_', IPv6, no port, user info);
// impossible ones are refused with what is wrong, never the password.
func TestCheckRedisURL(t *testing.T) {
	for _, u := range []string{
		"redis://127.0.0.1:6379/0", "redis://redis_1:6379", "rediss://user:secret@cache.example.com/3",
		"redis://[::1]:6379/0", "redis://localhost", "redis://", "unix:///run/redis.sock",
		"redis://a:7000/0?addr=b:7001&addr=10.0.0.3:7002", "redis://host.:6379/",
	} {
		if err := CheckRedisURL(u); err != nil {
			t.Errorf("CheckRedisURL(%q) = %v, want nil", u, err)
		}
	}
	for u, want := range map[string]string{
		"redis://127.0.0.1:99999/0":          `port "99999" is not a port number`,
		"redis://127.0.0.1:0/0":              `port "0" is not a port number`,
		"redis://h:/0":                       "the port after",
		"redis://bad..host:6379":             `host "bad..host" is not a host name`,
		"redis://h*st:6379":                  `host "h*st"`,
		"redis://h:6379/db":                  `the database "db"`,
		"redis://h:6379/0?addr=x":            `addr=x: "x" is not host:port`,
		"redis://h:6379/0?addr=x:65536":      `port "65536"`,
		"redis://u:s3cr%zzet@h:6379/0":       "does not parse (are the special characters",
		"redis://:s3cr#et@h:6379/0":          "does not parse (are the special characters",
		"redis://h:6x379/0":                  `does not parse: invalid port ":6x379"`,
		"http://h:6379":                      "must start with redis://",
		"redis://" + strings.Repeat("a", 64): "is not a host name",
	} {
		err := CheckRedisURL(u)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cr") {
			t.Errorf("CheckRedisURL(%q) = %v, want an error containing %q", u, err, want)
		}
	}
	if err := CheckListenAddr(":0"); err != nil {
		t.Errorf("CheckListenAddr(:0) = %v: port 0 is any free port", err)
	}
}
