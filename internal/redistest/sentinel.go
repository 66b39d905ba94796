package redistest

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redisserver"
)

// SentinelMaster is the master name a SentinelSet monitors.
const SentinelMaster = "mymaster"

// SentinelSet is a primary, its replica and three sentinels (quorum 2)
// watching them with short timings: a primary that stops answering is
// failed over within about two seconds.
type SentinelSet struct {
	t         testing.TB
	Servers   []*Server // the primary at start, then its replica
	Sentinels []*redisserver.Server
}

// StartSentinelSet starts the set and returns once every sentinel knows
// the replica; it is stopped at the end of the test. It fails the test
// when redis-sentinel is not installed (`make test` installs it).
func StartSentinelSet(t testing.TB, opts ...Option) *SentinelSet {
	t.Helper()
	opts = append([]Option{{"--repl-diskless-sync-delay", "0"}}, opts...)
	primary := Start(t, opts...)
	replica := Start(t, append([]Option{{"--replicaof", "127.0.0.1", strconv.Itoa(primary.port)}}, opts...)...)
	set := &SentinelSet{t: t, Servers: []*Server{primary, replica}}
	for range 3 {
		set.Sentinels = append(set.Sentinels, startSentinel(t, primary.port, ""))
	}
	set.await(20*time.Second, "every sentinel to know the replica and the other sentinels", func(c *redis.SentinelClient) bool {
		m, err := c.Master(context.Background(), SentinelMaster).Result()
		return err == nil && m["num-slaves"] == "1" && m["num-other-sentinels"] == "2"
	})
	return set
}

// startSentinel starts a redis-sentinel monitoring the primary on port
// (quorum 2, short timings), more configuration lines in extra, stopped at
// the end of the test.
func startSentinel(t testing.TB, port int, extra string) *redisserver.Server {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 5000\n"+
		"sentinel parallel-syncs %[1]s 1\n", SentinelMaster, port) + extra
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := redisserver.StartSentinel(context.Background(), dir, conf)
	if err != nil {
		t.Fatalf("redistest: cannot start redis-sentinel (`make test` installs it): %v", err)
	}
	t.Cleanup(s.Kill)
	return s
}

// SentinelAddrs are the sentinels' host:port.
func (s *SentinelSet) SentinelAddrs() []string {
	addrs := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		addrs[i] = sn.Addr()
	}
	return addrs
}

// PrimaryAddr is where the sentinels say the primary is now.
func (s *SentinelSet) PrimaryAddr() string {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0].Addr()})
	defer c.Close()
	a, err := c.GetMasterAddrByName(context.Background(), SentinelMaster).Result()
	if err != nil {
		s.t.Fatalf("redistest: asking the primary: %v", err)
	}
	return strings.Join(a, ":")
}

// Primary is the server the sentinels say is the primary now.
func (s *SentinelSet) Primary() *Server {
	addr := s.PrimaryAddr()
	for _, srv := range s.Servers {
		if srv.Addr() == addr {
			return srv
		}
	}
	s.t.Fatalf("redistest: the primary %s is none of the set's servers", addr)
	return nil
}

// Failover asks a sentinel for a failover (SENTINEL FAILOVER) and waits
// until every sentinel names the new primary, which then accepts writes.
func (s *SentinelSet) Failover(timeout time.Duration) (newPrimary string) {
	old := s.PrimaryAddr()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0].Addr()})
	defer c.Close()
	if err := c.Failover(context.Background(), SentinelMaster).Err(); err != nil {
		s.t.Fatalf("redistest: SENTINEL FAILOVER: %v", err)
	}
	return s.AwaitNewPrimary(old, timeout)
}

// AwaitNewPrimary waits until every sentinel names a primary other than
// old and that primary accepts writes.
func (s *SentinelSet) AwaitNewPrimary(old string, timeout time.Duration) string {
	var addr string
	s.await(timeout, "a new primary", func(c *redis.SentinelClient) bool {
		a, err := c.GetMasterAddrByName(context.Background(), SentinelMaster).Result()
		if err != nil || strings.Join(a, ":") == old {
			return false
		}
		addr = strings.Join(a, ":")
		return true
	})
	p := redis.NewClient(&redis.Options{Addr: addr})
	defer p.Close()
	deadline := time.Now().Add(timeout)
	for {
		role, err := p.Do(context.Background(), "ROLE").Slice()
		if err == nil && len(role) > 0 && role[0] == "master" {
			return addr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: %s named primary but not a master: %v %v", addr, role, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// await polls every sentinel until ok holds for each.
func (s *SentinelSet) await(timeout time.Duration, what string, ok func(*redis.SentinelClient) bool) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, sn := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
		for !ok(c) {
			if time.Now().After(deadline) {
				c.Close()
				s.t.Fatalf("redistest: waited %v for %s (sentinel %s: %s)", timeout, what, sn.Addr(), sn.LogTail())
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
	}
}

// AwaitReplicaSynced waits until every server but the primary replicates
// it with its link up and no full sync in progress: a kill -9 of the
// primary then loses only what asynchronous replication had not sent yet.
func (s *SentinelSet) AwaitReplicaSynced(timeout time.Duration) {
	s.t.Helper()
	primary := s.PrimaryAddr()
	deadline := time.Now().Add(timeout)
	var replicas []*Server
	for _, srv := range s.Servers {
		if srv.Addr() != primary {
			replicas = append(replicas, srv)
		}
	}
	poll(s.t, replicas, deadline, "in sync with "+primary, func(c *redis.Client) (bool, string) {
		info, err := c.Info(context.Background(), "replication").Result()
		host, port := redisserver.InfoField(info, "master_host"), redisserver.InfoField(info, "master_port")
		return err == nil && host+":"+port == primary && redisserver.InfoField(info, "master_link_status") == "up" &&
			redisserver.InfoField(info, "master_sync_in_progress") == "0", fmt.Sprint(err, info)
	})
}

// TLSSentinelSet is a primary, its replica and three sentinels that talk
// to clients and to each other only over mutual TLS: every address the
// sentinels hand out is a TLS port. Their plain ports stay open for the
// test's readiness checks only.
type TLSSentinelSet struct {
	Files        TLSFiles
	Servers      []*Server // the primary at start, then its replica
	TLSPorts     []int     // of Servers
	SentinelTLS  []string  // the sentinels' TLS host:port
	clientConfig *tls.Config
}

// StartTLSSentinelSet starts the set and returns once every sentinel
// knows the replica and the other sentinels.
func StartTLSSentinelSet(t testing.TB) *TLSSentinelSet {
	t.Helper()
	f := MakeTLSFiles(t)
	set := &TLSSentinelSet{Files: f}
	tlsArgs := func(port int) []string {
		return []string{"--tls-port", strconv.Itoa(port), "--tls-cert-file", f.ServerCert, "--tls-key-file", f.ServerKey,
			"--tls-ca-cert-file", f.CA, "--tls-auth-clients", "yes", "--tls-replication", "yes",
			"--tls-client-cert-file", f.ClientCert, "--tls-client-key-file", f.ClientKey}
	}
	free := func() int {
		p, err := redisserver.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	pport, rport := free(), free()
	primary := Start(t, Option(tlsArgs(pport)), Option{"--repl-diskless-sync-delay", "0"})
	replica := Start(t, Option(tlsArgs(rport)), Option{"--repl-diskless-sync-delay", "0",
		"--replicaof", "127.0.0.1", strconv.Itoa(pport), "--replica-announce-port", strconv.Itoa(rport)})
	set.Servers, set.TLSPorts = []*Server{primary, replica}, []int{pport, rport}
	for range 3 {
		sport := free()
		startSentinel(t, pport, fmt.Sprintf("sentinel announce-port %[1]d\n"+
			"tls-port %[1]d\ntls-cert-file %[2]s\ntls-key-file %[3]s\ntls-ca-cert-file %[4]s\n"+
			"tls-auth-clients yes\ntls-replication yes\ntls-client-cert-file %[5]s\ntls-client-key-file %[6]s\n",
			sport, f.ServerCert, f.ServerKey, f.CA, f.ClientCert, f.ClientKey))
		set.SentinelTLS = append(set.SentinelTLS, "127.0.0.1:"+strconv.Itoa(sport))
	}
	set.clientConfig = f.ClientConfig(t)
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range set.SentinelTLS {
		c := set.sentinel(addr)
		for {
			m, err := c.Master(context.Background(), SentinelMaster).Result()
			if err == nil && m["num-slaves"] == "1" && m["num-other-sentinels"] == "2" {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				t.Fatalf("redistest: TLS sentinel %s does not know the replica and the other sentinels: %v %v", addr, m, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
	}
	return set
}

func (s *TLSSentinelSet) sentinel(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, TLSConfig: s.clientConfig})
}

// PrimaryAddr is the TLS address the first sentinel names as the primary.
func (s *TLSSentinelSet) PrimaryAddr(t testing.TB) string {
	t.Helper()
	c := s.sentinel(s.SentinelTLS[0])
	defer c.Close()
	a, err := c.GetMasterAddrByName(context.Background(), SentinelMaster).Result()
	if err != nil {
		t.Fatalf("redistest: asking the primary over TLS: %v", err)
	}
	return strings.Join(a, ":")
}

// Failover runs SENTINEL FAILOVER over TLS and waits until every sentinel
// names another primary.
func (s *TLSSentinelSet) Failover(t testing.TB, timeout time.Duration) string {
	t.Helper()
	old := s.PrimaryAddr(t)
	c := s.sentinel(s.SentinelTLS[0])
	defer c.Close()
	if err := c.Failover(context.Background(), SentinelMaster).Err(); err != nil {
		t.Fatalf("redistest: SENTINEL FAILOVER over TLS: %v", err)
	}
	deadline := time.Now().Add(timeout)
	for _, addr := range s.SentinelTLS {
		sc := s.sentinel(addr)
		for {
			a, err := sc.GetMasterAddrByName(context.Background(), SentinelMaster).Result()
			if err == nil && strings.Join(a, ":") != old {
				break
			}
			if time.Now().After(deadline) {
				sc.Close()
				t.Fatalf("redistest: sentinel %s still names %s after %v (%v)", addr, old, timeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		sc.Close()
	}
	return s.PrimaryAddr(t)
}
