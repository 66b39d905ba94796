package redisconn

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/redistest"
)

// TestRedact: a Redis URL's password never reaches a message.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis://u:pw-1@h:6379/0":  "redis://u:xxxxx@h:6379/0",
		"redis://:pw-1@h:6379/0":   "redis://:xxxxx@h:6379/0",
		"redis://pw-1@h:6379/0":    "redis://xxxxx@h:6379/0", // a lone user info is a password
		"redis://h:6379/0":         "redis://h:6379/0",
		"redis://u:pw-1@h:port:x/": "redis://u:xxxxx@h:port:x/", // does not parse
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func open(t *testing.T, o Options) (*Client, error) {
	t.Helper()
	c, err := Open(context.Background(), o)
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

func ping(t *testing.T, o Options) error {
	t.Helper()
	c, err := open(t, o)
	if err != nil {
		return err
	}
	return c.Ping(context.Background()).Err()
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestSetupErrors: settings that cannot work are refused before any
// connection, with a setup error (*Error) that holds no secret.
func TestSetupErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    Options
		want string
	}{
		{"no url", Options{}, "no Redis URL"},
		{"bad url", Options{URL: "redis://u:pw-1@h:port:x/"}, `bad Redis URL "redis://u:xxxxx@h:port:x/"`},
		{"unknown parameter", Options{URL: "redis://u:pw-1@h/?colour=red"}, "bad Redis URL"},
		{"tls on redis://", Options{URL: "redis://h/", Settings: config.RedisSettings{TLS: config.TLSSettings{CAFile: "ca.pem"}}}, "redis.tls is given but the Redis URL is redis://"},
		{"missing CA file", Options{URL: "rediss://h/", Settings: config.RedisSettings{TLS: config.TLSSettings{CAFile: "/nonexistent/ca.pem"}}}, "reading redis.tls.ca_file"},
		{"cert without key", Options{URL: "rediss://h/", Getenv: env(map[string]string{EnvTLSCertFile: "c.pem"})}, "needs both its cert_file and its key_file"},
		{"seed list in single mode", Options{URL: "redis://h1:1?addr=h2:2", Settings: config.RedisSettings{Mode: config.RedisModeSingle}}, "Redis Cluster form, but redis.mode is single"},
		{"master_name in url", Options{URL: "redis://h1:1?master_name=m"}, "give redis.sentinel"},
		{"missing password file", Options{URL: "redis://h/", Settings: config.RedisSettings{PasswordFile: "/nonexistent/pw"}}, "reading redis.password_file"},
		{"sentinel and cluster", Options{Settings: config.RedisSettings{Mode: config.RedisModeCluster, Sentinel: config.SentinelSettings{MasterName: "m", Addrs: []string{"s:1"}}}}, "not a Redis Cluster"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := open(t, tt.o)
			var setup *Error
			if !errors.As(err, &setup) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "pw-1") {
				t.Errorf("error %v, want a setup error holding %q and no password", err, tt.want)
			}
		})
	}
}

// TestTLS: rediss:// checks the server's certificate against ca_file and
// presents the client certificate; insecure_skip_verify is the only way
// to skip the check, and it is logged.
func TestTLS(t *testing.T) {
	srv := redistest.StartTLS(t, "yes")
	f := srv.Files
	full := config.TLSSettings{CAFile: f.CA, CertFile: f.ClientCert, KeyFile: f.ClientKey}
	tlsOpts := func(ts config.TLSSettings) Options {
		return Options{URL: srv.TLSURL(), Settings: config.RedisSettings{TLS: ts}, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second}
	}
	if err := ping(t, tlsOpts(full)); err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	c, err := open(t, tlsOpts(full))
	if err != nil || c.Kind != KindSingle {
		t.Fatalf("kind %v, err %v: want single", c, err)
	}
	// The same files from the environment.
	o := Options{URL: srv.TLSURL(), MaxRetries: -1, Getenv: env(map[string]string{EnvTLSCAFile: f.CA, EnvTLSCertFile: f.ClientCert, EnvTLSKeyFile: f.ClientKey})}
	if err := ping(t, o); err != nil {
		t.Errorf("TLS files from the environment: %v", err)
	}
	if err := ping(t, tlsOpts(config.TLSSettings{CAFile: f.CA})); err == nil {
		t.Error("no client certificate: the server asks for one, want an error")
	}
	if err := ping(t, tlsOpts(config.TLSSettings{CAFile: f.OtherCA, CertFile: f.ClientCert, KeyFile: f.ClientKey})); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("server certificate of another CA: err %v, want a certificate error", err)
	}
	if err := ping(t, tlsOpts(config.TLSSettings{CertFile: f.ClientCert, KeyFile: f.ClientKey})); err == nil {
		t.Error("system roots only: want the test CA's certificate refused")
	}
	var logged bytes.Buffer
	o = tlsOpts(config.TLSSettings{CertFile: f.ClientCert, KeyFile: f.ClientKey, InsecureSkipVerify: true})
	o.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	if err := ping(t, o); err != nil {
		t.Errorf("insecure_skip_verify: %v", err)
	}
	if !strings.Contains(logged.String(), "insecure_skip_verify") {
		t.Errorf("insecure_skip_verify not logged: %q", logged.String())
	}
	// The plain port is plain: TLS settings on redis:// are refused (above),
	// and rediss:// on it fails the handshake.
	o = tlsOpts(full)
	o.URL = "rediss://" + srv.Addr() + "/0"
	if err := ping(t, o); err == nil {
		t.Error("rediss:// to the plain port: want a handshake error")
	}
}

// TestCredentials: the user and password come from the URL, then the
// configuration (password or password_file), then the environment, each
// over the one before; a wrong one fails without showing it.
func TestCredentials(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client()
	ctx := context.Background()
	if err := admin.Do(ctx, "ACL", "SETUSER", "app", "on", ">pw-url", ">pw-conf", ">pw-env", ">pw-file", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("pw-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	userURL := "redis://app:pw-url@" + srv.Addr() + "/0"
	whoami := func(o Options) (string, error) {
		c, err := open(t, o)
		if err != nil {
			return "", err
		}
		return c.Do(ctx, "ACL", "WHOAMI").Text()
	}
	for _, tt := range []struct {
		name string
		o    Options
	}{
		{"url", Options{URL: userURL}},
		{"config password over the url's", Options{URL: "redis://app:wrong@" + srv.Addr(), Settings: config.RedisSettings{Password: "pw-conf"}}},
		{"config user and password file", Options{URL: srv.URL(), Settings: config.RedisSettings{Username: "app", PasswordFile: pwFile}}},
		{"environment over the configuration", Options{URL: srv.URL(), Settings: config.RedisSettings{Username: "nobody", Password: "wrong"},
			Getenv: env(map[string]string{EnvUsername: "app", EnvPassword: "pw-env"})}},
		{"password file from the environment", Options{URL: srv.URL(), Getenv: env(map[string]string{EnvUsername: "app", EnvPasswordFile: pwFile})}},
	} {
		if who, err := whoami(tt.o); err != nil || who != "app" {
			t.Errorf("%s: ACL WHOAMI = %q, %v; want app", tt.name, who, err)
		}
	}
	_, err := whoami(Options{URL: srv.URL(), Settings: config.RedisSettings{Username: "app", Password: "pw-wrong"}, MaxRetries: -1})
	if err == nil || strings.Contains(err.Error(), "pw-wrong") {
		t.Errorf("wrong password: err %v, want an error without the password", err)
	}
}

// TestDetect: mode auto asks the server; a user that may not run INFO
// gets an error naming it, and mode single needs no INFO.
func TestDetect(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	if err := srv.Client().Do(ctx, "ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "+@all", "-info").Err(); err != nil {
		t.Fatal(err)
	}
	c, err := open(t, Options{URL: srv.URL()})
	if err != nil || c.Kind != KindSingle || c.Addr != srv.Addr() {
		t.Fatalf("Open = %+v, %v; want a single client of %s", c, err, srv.Addr())
	}
	if Restricted(ctx, c.UniversalClient) {
		t.Error("the default user of a server without ACL rules counts as restricted")
	}
	if r, err := open(t, Options{URL: "redis://noinfo:pw@" + srv.Addr(), Settings: config.RedisSettings{Mode: config.RedisModeSingle}}); err != nil || !Restricted(ctx, r.UniversalClient) {
		t.Errorf("a user without INFO: Restricted false (%v), want true", err)
	}
	_, err = open(t, Options{URL: "redis://noinfo:pw@" + srv.Addr()})
	var setup *Error
	if !errors.As(err, &setup) || !strings.Contains(err.Error(), "INFO") || !strings.Contains(err.Error(), "redis.mode") {
		t.Errorf("user without INFO: err %v, want a setup error naming INFO and redis.mode", err)
	}
	if err := ping(t, Options{URL: "redis://noinfo:pw@" + srv.Addr(), Settings: config.RedisSettings{Mode: config.RedisModeSingle}}); err != nil {
		t.Errorf("mode single needs no INFO: %v", err)
	}
	srv.Stop()
	_, err = open(t, Options{URL: srv.URL(), MaxRetries: -1})
	if err == nil || errors.As(err, &setup) {
		t.Errorf("server down: err %v, want a connection error (not a setup one)", err)
	}
}

// TestCluster: a node of a Redis Cluster is detected (mode auto), and the
// seed-node URL form makes a cluster client too.
func TestCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	for _, u := range []string{cl.Nodes[1].URL(), cl.Seeds()} {
		c, err := open(t, Options{URL: u})
		if err != nil || c.Kind != KindCluster {
			t.Fatalf("Open(%s) = %+v, %v; want a cluster client", u, c, err)
		}
		ctx := context.Background()
		for i := range 20 { // keys on every master: MOVED is followed
			k := "k" + strconv.Itoa(i)
			if err := c.Set(ctx, k, "v", 0).Err(); err != nil {
				t.Fatalf("SET %s: %v", k, err)
			}
		}
		if n, err := c.DBSize(ctx).Result(); err != nil || n != 20 {
			t.Errorf("DBSIZE over the masters = %d, %v; want 20", n, err)
		}
	}
	// config.Slot, which `resc check --cluster` uses, is the server's.
	admin := cl.Nodes[0].Client()
	for _, k := range []string{"in", "{plant}/trt/todo", "resc:delayed:{plant}/in", "{resc:}replicas", "a{}b", "é{ü}"} {
		if want, err := admin.ClusterKeySlot(context.Background(), k).Result(); err != nil || int(want) != config.Slot(k) {
			t.Errorf("config.Slot(%q) = %d, CLUSTER KEYSLOT %d (%v)", k, config.Slot(k), want, err)
		}
	}
	if _, err := open(t, Options{URL: cl.Nodes[0].URL(), Settings: config.RedisSettings{Mode: config.RedisModeSingle}}); err != nil {
		t.Errorf("mode single is taken at its word: %v", err)
	}
}

// TestTLSCluster: a Redis Cluster reached over mutual TLS, from one node's
// rediss:// URL (detected with INFO cluster over TLS) and from the seed
// form listing TLS ports: the client follows MOVED to the other masters on
// their TLS ports (announced to TLS clients), and without a client
// certificate it is refused.
func TestTLSCluster(t *testing.T) {
	cl := redistest.StartTLSCluster(t, 3, 0, "yes")
	f := cl.Files
	full := config.RedisSettings{TLS: config.TLSSettings{CAFile: f.CA, CertFile: f.ClientCert, KeyFile: f.ClientKey}}
	seeds := cl.TLSURL(0) + "?addr=127.0.0.1:" + strconv.Itoa(cl.TLSPorts[1]) + "&addr=127.0.0.1:" + strconv.Itoa(cl.TLSPorts[2])
	ctx := context.Background()
	for _, u := range []string{cl.TLSURL(1), seeds} {
		c, err := open(t, Options{URL: u, Settings: full})
		if err != nil || c.Kind != KindCluster {
			t.Fatalf("Open(%s) = %+v, %v; want a cluster client", u, c, err)
		}
		for i := range 20 { // keys on every master
			k := "k" + strconv.Itoa(i)
			if err := c.Set(ctx, k, "v", 0).Err(); err != nil {
				t.Fatalf("%s: SET %s: %v", u, k, err)
			}
		}
		if n, err := c.DBSize(ctx).Result(); err != nil || n != 20 {
			t.Errorf("%s: DBSIZE over the masters = %d, %v; want 20", u, n, err)
		}
	}
	noCert := Options{URL: seeds, Settings: config.RedisSettings{TLS: config.TLSSettings{CAFile: f.CA}}, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second}
	if err := ping(t, noCert); err == nil {
		t.Error("no client certificate: the nodes ask for one, want an error")
	}
}

// reply is an error reply of Redis, as go-redis returns it (redis.Error).
type reply string

func (r reply) Error() string { return string(r) }
func (reply) RedisError()     {}

// TestTransient: what a start waits out, and what it refuses at once.
func TestTransient(t *testing.T) {
	for _, err := range []error{
		reply("CLUSTERDOWN The cluster is down"), reply("CLUSTERDOWN Hash slot not served"),
		reply("LOADING Redis is loading the dataset in memory"), reply("TRYAGAIN Multiple keys request during rehashing of slot"),
		reply("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
		errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), errors.New("redis: cluster has no nodes"),
	} {
		if !Transient(err) {
			t.Errorf("Transient(%q) = false, want true", err)
		}
	}
	for _, err := range []error{
		nil, context.Canceled, reply("WRONGPASS invalid username-password pair or user is disabled."),
		reply("NOPERM User u has no permissions to run the 'get' command"), reply("WRONGTYPE Operation against a key holding the wrong kind of value"),
		&net.AddrError{Err: "invalid port", Addr: "99999"},
	} {
		if Transient(err) {
			t.Errorf("Transient(%v) = true, want false", err)
		}
	}
}
