package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Redis modes (RedisSettings.Mode).
const (
	// RedisModeAuto asks the server named by the URL (INFO cluster) and
	// uses a cluster client when it runs in cluster mode.
	RedisModeAuto = "auto"
	// RedisModeSingle is one server (or a Sentinel-managed primary).
	RedisModeSingle = "single"
	// RedisModeCluster is a Redis Cluster, the URL naming a seed node.
	RedisModeCluster = "cluster"
)

// RedisSettings are the keys of the top-level redis object besides url
// (Config.RedisURL): credentials, TLS, Sentinel and cluster mode. Secrets given here or by environment
// variables are never logged nor shown by `resc status` or the console.
type RedisSettings struct {
	// Username is redis.username, the ACL user, overriding the URL's.
	Username string
	// Password is redis.password, overriding the URL's. Prefer
	// PasswordFile or the RESC_REDIS_PASSWORD variable: a configuration
	// file is often not a secret.
	Password string
	// PasswordFile is redis.password_file, a file holding the password
	// (trailing newline ignored), read when connecting.
	PasswordFile string

	// TLS is redis.tls. It applies to rediss:// URLs (and to the
	// Sentinel-managed primary when the URL is rediss://).
	TLS TLSSettings

	// Sentinel is redis.sentinel; zero when the file gives none.
	Sentinel SentinelSettings

	// Mode is redis.mode: RedisModeAuto (also when empty, the default),
	// RedisModeSingle or RedisModeCluster.
	Mode string
}

// TLSSettings are the keys of redis.tls.
type TLSSettings struct {
	// CAFile is ca_file, the PEM certificates the server's is checked
	// against, instead of the system's roots.
	CAFile string
	// CertFile and KeyFile are cert_file and key_file, the PEM client
	// certificate and its key, for servers that ask for one
	// (tls-auth-clients). Both or neither.
	CertFile, KeyFile string
	// ServerName is server_name, the name the server's certificate must
	// hold when it is not the URL's host.
	ServerName string
	// InsecureSkipVerify is insecure_skip_verify: accept any server
	// certificate. Only for tests; logged as a warning.
	InsecureSkipVerify bool
}

// Given tells whether any TLS key was given.
func (t TLSSettings) Given() bool { return t != TLSSettings{} }

// SentinelSettings are the keys of redis.sentinel: the primary is asked
// from the sentinels, and asked again after a failover.
type SentinelSettings struct {
	// MasterName is master_name, the name the sentinels monitor.
	MasterName string
	// Addrs are addrs, the sentinels' host:port.
	Addrs []string
	// Username, Password and PasswordFile authenticate with the
	// sentinels themselves (requirepass / ACL of sentinel.conf).
	Username, Password, PasswordFile string
}

// Given tells whether a sentinel object was given.
func (s SentinelSettings) Given() bool { return s.MasterName != "" || len(s.Addrs) > 0 }

// nonEmptyInto is the set function of a key holding a non-empty string.
func (l *loader) nonEmptyInto(dst *string) func(string, any) {
	return func(p string, v any) { *dst, _ = l.nonEmpty(p, "", v) }
}

// redisFields are the keys of the top-level redis object.
func (l *loader) redisFields(rs *RedisSettings) []field {
	return []field{
		{name: "url", set: l.redisURLValue},
		{name: "username", set: l.nonEmptyInto(&rs.Username)},
		{name: "password", set: l.nonEmptyInto(&rs.Password)},
		{name: "password_file", set: l.nonEmptyInto(&rs.PasswordFile)},
		{name: "tls", set: func(p string, v any) { l.redisTLS(p, v, &rs.TLS) }},
		{name: "sentinel", set: func(p string, v any) { l.redisSentinel(p, v, &rs.Sentinel) }},
		{name: "mode", set: func(p string, v any) {
			s, ok := l.str(p, "", v)
			switch {
			case !ok:
			case s == RedisModeAuto, s == RedisModeSingle, s == RedisModeCluster:
				rs.Mode = s
			default:
				l.add(p, "", fmt.Sprintf("must be %q, %q or %q, not %q", RedisModeAuto, RedisModeSingle, RedisModeCluster, s))
			}
		}},
	}
}

func (l *loader) redisTLS(path string, v any, t *TLSSettings) {
	o, ok := l.obj(path, "", v)
	if !ok {
		return
	}
	l.walk(path, "", o, []field{
		{name: "ca_file", set: l.nonEmptyInto(&t.CAFile)},
		{name: "cert_file", set: l.nonEmptyInto(&t.CertFile)},
		{name: "key_file", set: l.nonEmptyInto(&t.KeyFile)},
		{name: "server_name", set: l.nonEmptyInto(&t.ServerName)},
		{name: "insecure_skip_verify", set: func(p string, v any) {
			b, ok := v.(bool)
			if !ok {
				l.wrongType(p, "", "true or false", v)
			}
			t.InsecureSkipVerify = b
		}},
	})
	if (t.CertFile == "") != (t.KeyFile == "") {
		l.add(path, "", "cert_file and key_file go together: give both or neither")
	}
}

func (l *loader) redisSentinel(path string, v any, s *SentinelSettings) {
	o, ok := l.obj(path, "", v)
	if !ok {
		return
	}
	l.walk(path, "", o, []field{
		{name: "master_name", required: true, set: l.nonEmptyInto(&s.MasterName)},
		{name: "addrs", required: true, set: func(p string, v any) {
			a, ok := v.([]any)
			if !ok || len(a) == 0 {
				l.add(p, "", "must be a non-empty array of \"host:port\" strings")
				return
			}
			for i, e := range a {
				addr, ok := l.nonEmpty(index(p, i), "", e)
				if !ok {
					continue
				}
				if err := CheckAddr(addr); err != nil {
					l.add(index(p, i), "", err.Error())
					continue
				}
				s.Addrs = append(s.Addrs, addr)
			}
		}},
		{name: "username", set: l.nonEmptyInto(&s.Username)},
		{name: "password", set: l.nonEmptyInto(&s.Password)},
		{name: "password_file", set: l.nonEmptyInto(&s.PasswordFile)},
	})
	if s.Password != "" && s.PasswordFile != "" {
		l.add(path, "", "give password or password_file, not both")
	}
}

// redisRelations reports redis keys that contradict each other.
func (l *loader) redisRelations(rs RedisSettings) {
	if rs.Password != "" && rs.PasswordFile != "" {
		l.add("redis", "", "give password or password_file, not both")
	}
	if rs.Sentinel.Given() && rs.Mode == RedisModeCluster {
		l.add("redis.mode", "", "a Sentinel-managed primary is not a Redis Cluster: drop mode or sentinel")
	}
	if rs.Sentinel.Given() && strings.Contains(l.redisURL, "addr=") {
		l.add("redis.url", "", "with redis.sentinel, the url gives only the scheme, credentials and database: list the sentinels in redis.sentinel.addrs")
	}
	// What package redisconn refuses of the file's URL, so that check
	// reports it as run does (a --redis-url given to run replaces it).
	u, err := url.Parse(l.redisURL)
	if l.redisURL == "" || err != nil {
		return
	}
	if rs.TLS.Given() && !strings.EqualFold(u.Scheme, "rediss") {
		l.add("redis.tls", "", fmt.Sprintf("is given but redis.url is %s://, which does not use TLS: use rediss://", u.Scheme))
	}
	if u.Query().Has("addr") && rs.Mode == RedisModeSingle {
		l.add("redis.mode", "", "is single but redis.url lists several nodes (addr=), which is the Redis Cluster form")
	}
	if u.Query().Has("master_name") {
		l.add("redis.url", "", "names a Sentinel master (master_name=): give redis.sentinel (master_name, addrs) instead")
	}
}

// ClusterByFile tells whether the file alone says Redis is a Redis
// Cluster: redis.mode cluster, or a URL listing several nodes (addr=).
// Run also finds a cluster by asking the server (mode auto).
func (c *Config) ClusterByFile() bool {
	if c.Redis.Mode == RedisModeCluster {
		return true
	}
	u, err := url.Parse(c.RedisURL)
	return err == nil && c.RedisURL != "" && u.Query().Has("addr") && !c.Redis.Sentinel.Given()
}
