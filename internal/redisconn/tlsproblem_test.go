package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/redistest"
)

// TestTLSFailureWording: a certificate refused on either side is said to
// be one, naming the certificate and the setting to change, never "did not
// answer"; the TLS error stays reachable with errors.As.
func TestTLSFailureWording(t *testing.T) {
	srv := redistest.StartTLS(t, "yes")
	f := srv.Files
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.TLSPort))
	for _, tt := range []struct {
		name string
		tls  config.TLSSettings
		want []string
	}{
		{"server certificate of another CA", config.TLSSettings{CAFile: f.OtherCA, CertFile: f.ClientCert, KeyFile: f.ClientKey},
			[]string{"Redis at " + addr + ": the server's TLS certificate (subject \"", "issued by \"",
				"is refused: it is signed by an authority this client does not trust (x509: certificate signed by unknown authority): set redis.tls.ca_file (or RESC_REDIS_TLS_CA_FILE)"}},
		{"another server name", config.TLSSettings{CAFile: f.CA, CertFile: f.ClientCert, KeyFile: f.ClientKey, ServerName: "wrong.example"},
			[]string{"is refused: it is not issued for the name connected to (x509: certificate is valid for localhost, not wrong.example): connect with a name it lists, or set redis.tls.server_name"}},
		{"no client certificate", config.TLSSettings{CAFile: f.CA},
			[]string{"Redis at " + addr + ": the server refused this client's TLS certificate (remote error: tls: certificate required): set redis.tls.cert_file and key_file"}},
	} {
		o := Options{URL: srv.TLSURL(), Settings: config.RedisSettings{TLS: tt.tls}, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second}
		err := ping(t, o)
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		t.Logf("%s: %v", tt.name, err)
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v\nwant %q in it", tt.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "did not answer") {
			t.Errorf("%s: %v: says Redis did not answer", tt.name, err)
		}
	}
	_, err := open(t, Options{URL: srv.TLSURL(), Settings: config.RedisSettings{TLS: config.TLSSettings{CAFile: f.OtherCA}}, MaxRetries: -1, DialerRetries: 1})
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
		t.Errorf("%v: not a *tls.CertificateVerificationError through errors.As", err)
	}
}

// TestTLSFailureNotWaited: the start's wait (Options.Wait) does not wait
// out a refused certificate, a setting no wait mends: Open returns a setup
// error (*Error: resc run exits 2) saying which certificate, at once,
// instead of retrying "Redis does not answer yet" until ctx ends, in both
// of its loops (the cluster detection of mode auto, the PING of mode
// single).
func TestTLSFailureNotWaited(t *testing.T) {
	srv := redistest.StartTLS(t, "no")
	for _, mode := range []string{"auto", "single"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		o := Options{URL: srv.TLSURL(), Settings: config.RedisSettings{Mode: mode, TLS: config.TLSSettings{CAFile: srv.Files.OtherCA}},
			Wait: true, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second}
		c, err := Open(ctx, o)
		ended := ctx.Err()
		cancel()
		if err == nil {
			_ = c.Close()
			t.Fatalf("mode %s: no error", mode)
		}
		if _, ok := errors.AsType[*Error](err); !ok || ended != nil {
			t.Errorf("mode %s: %v (%T, context %v): want a setup error before the context ends", mode, err, err, ended)
		}
		if !strings.Contains(err.Error(), "is signed by an authority this client does not trust") {
			t.Errorf("mode %s: %v: does not say which certificate is refused", mode, err)
		}
	}
}

// TestTLSProblemExpired: an expired server certificate is said to be
// expired.
func TestTLSProblemExpired(t *testing.T) {
	err := &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired, Detail: "current time is after 2026-01-01"}}
	if got := tlsProblem(err); !strings.Contains(got, "the server's TLS certificate is refused: it has expired or is not valid yet (x509: certificate has expired or is not yet valid: current time is after 2026-01-01): renew it") {
		t.Errorf("tlsProblem = %q", got)
	}
	if got := tlsProblem(errors.New("dial tcp: connection refused")); got != "" {
		t.Errorf("a refused connection worded as a TLS problem: %q", got)
	}
}
