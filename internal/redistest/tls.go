package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/resc-go/resc/internal/redisserver"
)

// TLSFiles are the PEM files of a test certificate authority, a server
// certificate it signed for 127.0.0.1 and localhost, and a client
// certificate it signed.
type TLSFiles struct {
	Dir                       string
	CA, ServerCert, ServerKey string
	ClientCert, ClientKey     string
	OtherCA                   string // a CA that signed nothing here
}

// MakeTLSFiles writes fresh test certificates in a temporary directory.
func MakeTLSFiles(t testing.TB) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	f := TLSFiles{Dir: dir}
	caKey, caCert := makeCA(t, "resc test CA")
	f.CA = writePEM(t, dir, "ca.pem", "CERTIFICATE", caCert.Raw)
	_, other := makeCA(t, "resc other CA")
	f.OtherCA = writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.Raw)
	f.ServerCert, f.ServerKey = makeLeaf(t, dir, "server", caKey, caCert, x509.ExtKeyUsageServerAuth)
	f.ClientCert, f.ClientKey = makeLeaf(t, dir, "client", caKey, caCert, x509.ExtKeyUsageClientAuth)
	return f
}

func makeCA(t testing.TB, name string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func makeLeaf(t testing.TB, dir, name string, caKey *ecdsa.PrivateKey, ca *x509.Certificate, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "resc test " + name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+".key", "EC PRIVATE KEY", kb)
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TLSServer is a redis-server that also listens with TLS.
type TLSServer struct {
	*Server
	Files   TLSFiles
	TLSPort int
}

// TLSURL is the rediss:// URL of the TLS port.
func (s *TLSServer) TLSURL() string {
	return "rediss://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.TLSPort)) + "/0"
}

// StartTLS starts a redis-server with a TLS port beside its plain one (the
// plain one for the test's own checks), with certificates made for the
// test; authClients is redis-server's tls-auth-clients: "yes" asks every
// client for a certificate signed by Files.CA, "no" asks none.
func StartTLS(t testing.TB, authClients string, opts ...Option) *TLSServer {
	t.Helper()
	f := MakeTLSFiles(t)
	port, err := redisserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	args := Option{"--tls-port", strconv.Itoa(port), "--tls-cert-file", f.ServerCert, "--tls-key-file", f.ServerKey,
		"--tls-ca-cert-file", f.CA, "--tls-auth-clients", authClients}
	return &TLSServer{Server: Start(t, append([]Option{args}, opts...)...), Files: f, TLSPort: port}
}

// ClientConfig is a TLS client configuration trusting f.CA and presenting
// the client certificate.
func (f TLSFiles) ClientConfig(t testing.TB) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("redistest: no certificate in the test CA file")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
}
