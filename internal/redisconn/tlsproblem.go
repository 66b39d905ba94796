package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// unanswered is the error of a server that Open could not talk to: a TLS
// certificate refused on either side is said to be one, naming the
// certificate and the setting to change, since "did not answer" sent the
// reader after the network; any other failure did not answer.
func unanswered(addr string, err error) error {
	if p := tlsProblem(err); p != "" {
		return &tlsError{msg: fmt.Sprintf("Redis at %s: %s", addr, p), err: err}
	}
	//lint:ignore ST1005 the message of every command that cannot reach Redis starts so
	return fmt.Errorf("Redis at %s did not answer: %w", addr, err)
}

// tlsError is a TLS failure worded by tlsProblem; it unwraps to the
// failure.
type tlsError struct {
	msg string
	err error
}

func (e *tlsError) Error() string { return e.msg }
func (e *tlsError) Unwrap() error { return e.err }

// tlsProblem says which certificate a TLS handshake refused and why, and
// what to set; "" when err is no certificate failure.
func tlsProblem(err error) string {
	if cv, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		which := "the server's TLS certificate"
		if len(cv.UnverifiedCertificates) > 0 {
			c := cv.UnverifiedCertificates[0]
			which = fmt.Sprintf("the server's TLS certificate (subject %q, issued by %q, valid %s to %s)",
				c.Subject.String(), c.Issuer.String(), c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly))
		}
		if _, ok := errors.AsType[x509.UnknownAuthorityError](cv.Err); ok {
			return fmt.Sprintf("%s is refused: it is signed by an authority this client does not trust (%v): "+
				"set redis.tls.ca_file (or %s) to the certificate of the CA that signed it", which, cv.Err, EnvTLSCAFile)
		}
		if _, ok := errors.AsType[x509.HostnameError](cv.Err); ok {
			return fmt.Sprintf("%s is refused: it is not issued for the name connected to (%v): "+
				"connect with a name it lists, or set redis.tls.server_name to one", which, cv.Err)
		}
		if ci, ok := errors.AsType[x509.CertificateInvalidError](cv.Err); ok && ci.Reason == x509.Expired {
			return fmt.Sprintf("%s is refused: it has expired or is not valid yet (%v): renew it on the server", which, cv.Err)
		}
		return fmt.Sprintf("%s is refused (%v)", which, cv.Err)
	}
	// The server's alert comes as a net.OpError "remote error" around an
	// unexported type of crypto/tls: known by its text, "tls: bad
	// certificate", "tls: certificate required", "tls: unknown certificate
	// authority"...
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "remote error" && op.Err != nil &&
		strings.HasPrefix(op.Err.Error(), "tls: ") && strings.Contains(op.Err.Error(), "certificate") {
		return fmt.Sprintf("the server refused this client's TLS certificate (%v): set redis.tls.cert_file and key_file "+
			"(or %s and %s) to a certificate signed by a CA of the server's tls-ca-cert-file", err, EnvTLSCertFile, EnvTLSKeyFile)
	}
	return ""
}
