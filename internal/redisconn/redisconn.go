// Package redisconn makes the go-redis client of every command from the
// configuration's redis object and the command line: one server, a
// Sentinel-managed primary (failover client) or a Redis Cluster (cluster
// client, detected with INFO cluster), over TLS where the URL is rediss://,
// with the ACL user and password from the URL, the configuration, a file or
// the environment. No secret it handles is ever put in an error or a log.
package redisconn

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/config"
)

// Environment variables read by Open (through Options.Getenv), over the
// configuration's keys.
const (
	EnvUsername     = "RESC_REDIS_USERNAME"
	EnvPassword     = "RESC_REDIS_PASSWORD"
	EnvPasswordFile = "RESC_REDIS_PASSWORD_FILE"
	EnvTLSCAFile    = "RESC_REDIS_TLS_CA_FILE"
	EnvTLSCertFile  = "RESC_REDIS_TLS_CERT_FILE"
	EnvTLSKeyFile   = "RESC_REDIS_TLS_KEY_FILE"
)

// Kinds of deployment a client talks to (Client.Kind).
const (
	KindSingle   = "single"
	KindSentinel = "sentinel"
	KindCluster  = "cluster"
)

// Options say how to connect.
type Options struct {
	// URL is the Redis URL (--redis-url over redis.url); it may be empty
	// with a Sentinel configuration.
	URL string
	// Settings are the other keys of the configuration's redis object.
	Settings config.RedisSettings
	// Getenv reads the RESC_REDIS_* variables; nil reads none.
	Getenv func(string) string
	// PoolSize is the least connection pool size (per node on a cluster).
	PoolSize int
	// MaxRetries is go-redis's MaxRetries: -1 for none, which the replica
	// uses so that a lost reply surfaces. Zero keeps go-redis's default.
	MaxRetries int
	// DialTimeout, IOTimeout (read and write) and DialerRetries, when
	// positive, replace go-redis's defaults.
	DialTimeout, IOTimeout time.Duration
	DialerRetries          int
	// Wait makes Open retry the cluster detection (INFO cluster) while the
	// server is unreachable, until ctx ends; otherwise the first failure
	// is returned.
	Wait bool
	// Logger gets the warnings (insecure TLS, the detection retries).
	Logger *slog.Logger
}

// Client is a connected client and what it talks to. Hand the packages
// UniversalClient itself, not the Client: they tell a cluster client
// (*redis.ClusterClient) by its type.
type Client struct {
	redis.UniversalClient
	// Kind is KindSingle, KindSentinel or KindCluster.
	Kind string
	// Addr is where it connects, without credentials: host:port of the
	// server or first seed node, or "<master> via <sentinels>".
	Addr string
}

// Error is a setup problem (bad URL, unreadable file, contradictory
// settings, a user without the permission to run INFO), which trying
// again will not mend; Open's other errors are a server that did not
// answer. No error text holds a secret.
type Error struct {
	msg string
	err error // the failure it words, if any
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.err }

func errorf(format string, a ...any) error { return &Error{msg: fmt.Sprintf(format, a...)} }

// credentials are the user and password to authenticate with.
type credentials struct{ user, pass string }

// Open makes the client o describes; on a cluster-mode server (mode auto,
// detected with INFO cluster, or mode cluster) a cluster client.
func Open(ctx context.Context, o Options) (*Client, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	rs := o.Settings
	if v := getenv(EnvTLSCAFile); v != "" {
		rs.TLS.CAFile = v
	}
	if v := getenv(EnvTLSCertFile); v != "" {
		rs.TLS.CertFile = v
	}
	if v := getenv(EnvTLSKeyFile); v != "" {
		rs.TLS.KeyFile = v
	}
	if (rs.TLS.CertFile == "") != (rs.TLS.KeyFile == "") {
		return nil, errorf("a TLS client certificate needs both its cert_file and its key_file (%s, %s)", EnvTLSCertFile, EnvTLSKeyFile)
	}
	if rs.Sentinel.Given() {
		return openSentinel(ctx, o, rs, getenv)
	}
	if o.URL == "" {
		return nil, errorf("no Redis URL: set redis.url in the configuration, --redis-url or RESC_REDIS_URL")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, badURL(o.URL, err)
	}
	if err := config.CheckRedisURL(o.URL); err != nil {
		return nil, badURL(o.URL, err)
	}
	seeds := u.Query().Has("addr")
	mode := cmp.Or(rs.Mode, config.RedisModeAuto)
	if seeds && mode == config.RedisModeSingle {
		return nil, errorf("the Redis URL %s lists several nodes (addr=), which is the Redis Cluster form, but redis.mode is single", Redact(o.URL))
	}
	if u.Query().Has("master_name") {
		return nil, errorf("the Redis URL %s names a Sentinel master: give redis.sentinel (master_name, addrs) instead", Redact(o.URL))
	}
	creds, err := readCredentials(u, rs, getenv)
	if err != nil {
		return nil, err
	}
	tlsConf, err := tlsConfig(u, rs.TLS, o.Logger)
	if err != nil {
		return nil, err
	}
	if seeds || mode == config.RedisModeCluster {
		return awaited(ctx, o)(openCluster(o, creds, tlsConf))
	}
	opts, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, badURL(o.URL, err)
	}
	applyCommon(o, opts, creds, tlsConf)
	c := redis.NewClient(opts)
	if mode == config.RedisModeAuto && opts.Network != "unix" {
		cluster, err := detectCluster(ctx, c, o)
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		if cluster {
			_ = c.Close()
			return awaited(ctx, o)(openCluster(o, creds, tlsConf))
		}
	}
	return awaited(ctx, o)(&Client{UniversalClient: c, Kind: KindSingle, Addr: opts.Addr}, nil)
}

// awaited returns the function that, with o.Wait, waits until the client
// it is given answers (await), closing it on an error.
func awaited(ctx context.Context, o Options) func(*Client, error) (*Client, error) {
	return func(c *Client, err error) (*Client, error) {
		if err != nil || !o.Wait {
			return c, err
		}
		if err := await(ctx, c, o); err != nil {
			_ = c.Close()
			return nil, err
		}
		return c, nil
	}
}

// applyCommon sets what every client kind shares.
func applyCommon(o Options, opts *redis.Options, creds credentials, tlsConf *tls.Config) {
	opts.Username, opts.Password = creds.user, creds.pass
	if tlsConf != nil {
		opts.TLSConfig = tlsConf
	}
	opts.PoolSize = max(opts.PoolSize, o.PoolSize)
	tune(o, &opts.MaxRetries, &opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout)
	if o.DialerRetries > 0 {
		opts.DialerRetries = o.DialerRetries
	}
}

// tune applies the retry and timeout options to a go-redis options value.
func tune(o Options, maxRetries *int, dial, read, write *time.Duration) {
	if o.MaxRetries != 0 {
		*maxRetries = o.MaxRetries
	}
	if o.DialTimeout > 0 {
		*dial = o.DialTimeout
	}
	if o.IOTimeout > 0 {
		*read, *write = o.IOTimeout, o.IOTimeout
	}
}

func openCluster(o Options, creds credentials, tlsConf *tls.Config) (*Client, error) {
	opts, err := redis.ParseClusterURL(o.URL)
	if err != nil {
		return nil, badURL(o.URL, err)
	}
	single := &redis.Options{PoolSize: opts.PoolSize, MaxRetries: opts.MaxRetries, DialTimeout: opts.DialTimeout,
		ReadTimeout: opts.ReadTimeout, WriteTimeout: opts.WriteTimeout, DialerRetries: opts.DialerRetries, TLSConfig: opts.TLSConfig}
	applyCommon(o, single, creds, tlsConf)
	opts.Username, opts.Password, opts.TLSConfig, opts.PoolSize = single.Username, single.Password, single.TLSConfig, single.PoolSize
	opts.MaxRetries, opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = single.MaxRetries, single.DialTimeout, single.ReadTimeout, single.WriteTimeout
	opts.DialerRetries = single.DialerRetries
	cc := redis.NewClusterClient(opts)
	cc.AddHook(&reloadOnFailure{c: cc})
	return &Client{UniversalClient: cc, Kind: KindCluster, Addr: strings.Join(opts.Addrs, ",")}, nil
}

func openSentinel(ctx context.Context, o Options, rs config.RedisSettings, getenv func(string) string) (*Client, error) {
	s := rs.Sentinel
	if s.MasterName == "" || len(s.Addrs) == 0 {
		return nil, errorf("redis.sentinel needs master_name and addrs")
	}
	for _, a := range s.Addrs {
		if err := config.CheckAddr(a); err != nil {
			return nil, errorf("redis.sentinel.addrs: %v", err)
		}
	}
	if rs.Mode == config.RedisModeCluster {
		return nil, errorf("a Sentinel-managed primary is not a Redis Cluster: drop redis.mode or redis.sentinel")
	}
	fo := &redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.Addrs, SentinelUsername: s.Username}
	var u *url.URL
	if o.URL != "" {
		var err error
		if u, err = url.Parse(o.URL); err != nil {
			return nil, badURL(o.URL, err)
		}
		if u.Query().Has("addr") {
			return nil, errorf("with redis.sentinel, the url gives only the scheme, credentials and database: list the sentinels in redis.sentinel.addrs")
		}
		opts, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, badURL(o.URL, err)
		}
		fo.DB = opts.DB
	} else {
		u = &url.URL{Scheme: "redis"}
	}
	creds, err := readCredentials(u, rs, getenv)
	if err != nil {
		return nil, err
	}
	fo.Username, fo.Password = creds.user, creds.pass
	if fo.SentinelPassword, err = secret(s.Password, s.PasswordFile, "redis.sentinel.password_file"); err != nil {
		return nil, err
	}
	if fo.TLSConfig, err = tlsConfig(u, rs.TLS, o.Logger); err != nil {
		return nil, err
	}
	fo.PoolSize = o.PoolSize
	tune(o, &fo.MaxRetries, &fo.DialTimeout, &fo.ReadTimeout, &fo.WriteTimeout)
	return awaited(ctx, o)(&Client{UniversalClient: redis.NewFailoverClient(fo), Kind: KindSentinel,
		Addr: s.MasterName + " via " + strings.Join(s.Addrs, ",")}, nil)
}

// readCredentials takes the user and password from the URL, then the
// configuration's keys, then the environment, each over the one before.
func readCredentials(u *url.URL, rs config.RedisSettings, getenv func(string) string) (credentials, error) {
	var c credentials
	if u.User != nil {
		c.user = u.User.Username()
		c.pass, _ = u.User.Password()
		if _, ok := u.User.Password(); !ok && c.user != "" {
			// redis://secret@host: go-redis reads a lone user info as
			// the password of the default user, as redis-cli does.
			c.user, c.pass = "", c.user
		}
	}
	c.user = cmp.Or(getenv(EnvUsername), rs.Username, c.user)
	pass, err := secret(rs.Password, rs.PasswordFile, "redis.password_file")
	if err != nil {
		return c, err
	}
	envPass, err := secret(getenv(EnvPassword), getenv(EnvPasswordFile), EnvPasswordFile)
	if err != nil {
		return c, err
	}
	c.pass = cmp.Or(envPass, pass, c.pass)
	return c, nil
}

// secret is value, or the content of file (its trailing newline dropped);
// name names the file's key in the error.
func secret(value, file, name string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", errorf("reading %s: %v", name, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", errorf("%s %s is empty", name, file)
	}
	return s, nil
}

// tlsConfig is the TLS configuration of a rediss:// URL, nil for redis://
// (an error when TLS keys were given: they would be silently ignored).
func tlsConfig(u *url.URL, t config.TLSSettings, log *slog.Logger) (*tls.Config, error) {
	if u.Scheme != "rediss" {
		if t.Given() {
			return nil, errorf("redis.tls is given but the Redis URL is %s://, which does not use TLS: use rediss://", u.Scheme)
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cmp.Or(t.ServerName, u.Hostname())}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, errorf("reading redis.tls.ca_file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errorf("redis.tls.ca_file %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, errorf("loading the client certificate redis.tls.cert_file/key_file: %v", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	skip := t.InsecureSkipVerify || u.Query().Get("skip_verify") == "true"
	if skip {
		c.InsecureSkipVerify = true
		if log != nil {
			log.Warn("TLS certificate checks are OFF (insecure_skip_verify): anyone on the path can read and change the traffic to Redis")
		}
	}
	return c, nil
}

// Restricted tells whether the ACL user of c may be refused a command,
// key or channel: false only when ACL GETUSER shows it all commands, keys
// and channels (the default user of a server without ACL rules). A user
// that may not run ACL GETUSER is restricted; a server without ACL
// (the embedded one) is not.
func Restricted(ctx context.Context, c redis.UniversalClient) bool {
	me, err := c.Do(ctx, "ACL", "WHOAMI").Text()
	if err != nil {
		return isNoPerm(err)
	}
	reply, err := c.Do(ctx, "ACL", "GETUSER", me).Result()
	if err != nil {
		return isNoPerm(err) || !isServerError(err)
	}
	fields := map[string]any{}
	switch u := reply.(type) {
	case map[any]any: // RESP3
		for k, v := range u {
			if name, ok := k.(string); ok {
				fields[name] = v
			}
		}
	case []any: // RESP2: name, value, ...
		for i := 0; i+1 < len(u); i += 2 {
			if name, ok := u[i].(string); ok {
				fields[name] = u[i+1]
			}
		}
	}
	all := map[string]string{"commands": "+@all", "keys": "~*", "channels": "&*"}
	for name, want := range all {
		if v, _ := fields[name].(string); v == want {
			delete(all, name)
		}
	}
	return len(all) > 0
}

// detectCluster asks the server whether it runs in cluster mode (INFO
// cluster). A server without that section (the embedded one) is not.
func detectCluster(ctx context.Context, c *redis.Client, o Options) (bool, error) {
	delay := 100 * time.Millisecond
	for {
		info, err := c.Info(ctx, "cluster").Result()
		switch {
		case err == nil:
			return strings.Contains(info, "cluster_enabled:1"), nil
		case isNoPerm(err):
			return false, errorf("the Redis user may not run INFO (%v): allow +info, or set redis.mode to single or cluster", err)
		case refusedCredentials(err):
			return false, credentialsError(c.Options().Addr, err)
		case tlsProblem(err) != "":
			return false, certificateError(c.Options().Addr, err)
		case impossibleAddress(err):
			return false, errorf("Redis at %s cannot be reached: %v", c.Options().Addr, err)
		case isServerError(err):
			return false, nil // an older or embedded server without the section
		case !o.Wait || ctx.Err() != nil:
			return false, unanswered(c.Options().Addr, err)
		}
		if o.Logger != nil {
			o.Logger.Warn("Redis does not answer yet; retrying", "err", err, "retry_in", delay)
		}
		select {
		case <-ctx.Done():
			//lint:ignore ST1005 the message of every command that cannot reach Redis starts so
			return false, fmt.Errorf("Redis at %s did not answer: %w", c.Options().Addr, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func isNoPerm(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOPERM")
}

// isServerError tells a Redis error reply from a network failure.
func isServerError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// Redact is u with its password, if any, replaced by "xxxxx" (a lone user
// info too: go-redis reads it as the password), for messages and logs.
func Redact(u string) string { return config.RedactURL(u) }

// badURL is the error of a Redis URL that does not parse, its password
// masked in the URL and in the error.
func badURL(u string, err error) error {
	msg := strings.ReplaceAll(stripURL(err).Error(), u, Redact(u))
	if p, perr := url.Parse(u); perr == nil && p.User != nil {
		if pw, has := p.User.Password(); has && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return errorf("bad Redis URL %q: %s", Redact(u), msg)
}

// stripURL drops the URL a url.Error repeats (it may hold a password).
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
