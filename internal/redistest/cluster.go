package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resc-go/resc/internal/redisserver"
)

// Cluster is a Redis Cluster of redis-server processes started by a test.
type Cluster struct {
	t     testing.TB
	Nodes []*Server // masters first, then replicas, as created
}

// StartCluster starts masters*(1+replicas) cluster-enabled servers on free
// loopback ports (and free bus ports), joins them with `redis-cli --cluster
// create`, and returns once every node reports cluster_state:ok. They are
// stopped at the end of the test.
func StartCluster(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	var addrs []string
	for range masters * (1 + replicas) {
		args, err := redisserver.ClusterNodeArgs()
		if err != nil {
			t.Fatal(err)
		}
		s := Start(t, Option(args))
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr())
	}
	if err := redisserver.CreateCluster(context.Background(), addrs, replicas); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return c
}

// Seeds is the go-redis cluster URL of the cluster's nodes.
func (c *Cluster) Seeds() string {
	u := "redis://" + c.Nodes[0].Addr() + "/0?"
	var addrs []string
	for _, n := range c.Nodes[1:] {
		addrs = append(addrs, "addr="+n.Addr())
	}
	return u + strings.Join(addrs, "&")
}

// Client is a cluster client of the cluster, closed at the end of the test.
func (c *Cluster) Client() *redis.ClusterClient {
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.Addr())
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// AwaitOK waits until every running node reports cluster_state:ok and
// knows the same number of masters.
func (c *Cluster) AwaitOK(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	poll(c.t, c.Nodes, deadline, "cluster_state:ok", func(cl *redis.Client) (bool, string) {
		info, err := cl.ClusterInfo(context.Background()).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok"), fmt.Sprint(err, info)
	})
}

// poll waits until cond holds for each running server of servers, failing
// the test past deadline with what and cond's last description.
func poll(t testing.TB, servers []*Server, deadline time.Time, what string, cond func(*redis.Client) (bool, string)) {
	t.Helper()
	for _, n := range servers {
		if n.stopped() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr()})
		for {
			ok, desc := cond(cl)
			if ok {
				break
			}
			if time.Now().After(deadline) {
				cl.Close()
				t.Fatalf("redistest: %s: %s not there in time: %s", n.Addr(), what, desc)
			}
			time.Sleep(20 * time.Millisecond)
		}
		cl.Close()
	}
}

// nodeID is the cluster node id of n.
func (c *Cluster) nodeID(n *Server) string {
	cl := redis.NewClient(&redis.Options{Addr: n.Addr()})
	defer cl.Close()
	id, err := cl.Do(context.Background(), "CLUSTER", "MYID").Text()
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER MYID of %s: %v", n.Addr(), err)
	}
	return id
}

// Owner is the running node serving slot as a master.
func (c *Cluster) Owner(slot int) *Server {
	c.t.Helper()
	if n := c.owner(slot); n != nil {
		return n
	}
	c.t.Fatalf("redistest: no running master serves slot %d", slot)
	return nil
}

// AwaitNewOwner waits until a running master other than old serves slot
// (its replica promoted after old was killed) and every running node
// reports cluster_state:ok.
func (c *Cluster) AwaitNewOwner(slot int, old *Server, timeout time.Duration) *Server {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if n := c.owner(slot); n != nil && n != old {
			c.AwaitOK(time.Until(deadline))
			return n
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redistest: slot %d has no new master after %v; CLUSTER NODES:\n%s", slot, timeout, c.nodes())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) owner(slot int) *Server {
	for _, n := range c.Nodes {
		if n.stopped() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr()})
		shards, err := cl.ClusterShards(context.Background()).Result()
		cl.Close()
		if err != nil {
			continue
		}
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if int(r.Start) > slot || slot > int(r.End) {
					continue
				}
				for _, nd := range sh.Nodes {
					if nd.Role != "master" {
						continue
					}
					for _, m := range c.Nodes {
						if m.port == int(nd.Port) && !m.stopped() {
							return m
						}
					}
				}
			}
		}
		return nil // the first running node's view decides
	}
	return nil
}

// MigrateSlot moves slot, keys and all, from its master to dst (another
// master) the way redis-cli --cluster reshard does: IMPORTING on dst,
// MIGRATING on the source, MIGRATE of its keys in batches, then SETSLOT
// NODE on every master. Clients meanwhile get ASK and TRYAGAIN replies.
func (c *Cluster) MigrateSlot(slot int, dst *Server) {
	c.t.Helper()
	ctx := context.Background()
	src := c.Owner(slot)
	srcID, dstID := c.nodeID(src), c.nodeID(dst)
	sc, dc := redis.NewClient(&redis.Options{Addr: src.Addr()}), redis.NewClient(&redis.Options{Addr: dst.Addr()})
	defer sc.Close()
	defer dc.Close()
	s := strconv.Itoa(slot)
	must := func(err error, what string) {
		if err != nil {
			c.t.Fatalf("redistest: migrating slot %d: %s: %v", slot, what, err)
		}
	}
	must(dc.Do(ctx, "CLUSTER", "SETSLOT", s, "IMPORTING", srcID).Err(), "IMPORTING")
	must(sc.Do(ctx, "CLUSTER", "SETSLOT", s, "MIGRATING", dstID).Err(), "MIGRATING")
	for {
		keys, err := sc.ClusterGetKeysInSlot(ctx, slot, 10).Result()
		must(err, "GETKEYSINSLOT")
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(sc.Do(ctx, args...).Err(), "MIGRATE")
	}
	for _, n := range c.Nodes {
		if n.stopped() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr()})
		err := cl.Do(ctx, "CLUSTER", "SETSLOT", s, "NODE", dstID).Err()
		cl.Close()
		if err != nil && !strings.Contains(err.Error(), "only with masters") {
			must(err, "SETSLOT NODE on "+n.Addr())
		}
	}
}

// Masters are the running nodes that serve slots.
func (c *Cluster) Masters() []*Server {
	var ms []*Server
	for _, n := range c.Nodes {
		if n.stopped() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr()})
		role, err := cl.Do(context.Background(), "ROLE").Slice()
		cl.Close()
		if err == nil && len(role) > 0 && role[0] == "master" {
			ms = append(ms, n)
		}
	}
	return ms
}

// nodes is CLUSTER NODES as the first running node sees it, for messages.
func (c *Cluster) nodes() string {
	for _, n := range c.Nodes {
		if !n.stopped() {
			cl := redis.NewClient(&redis.Options{Addr: n.Addr()})
			defer cl.Close()
			v, err := cl.ClusterNodes(context.Background()).Result()
			if err != nil {
				return err.Error()
			}
			return v
		}
	}
	return ""
}

// TLSCluster is a Cluster whose nodes also listen with TLS, the cluster
// bus and replication over TLS too (tls-cluster, tls-replication), with
// certificates made for the test.
type TLSCluster struct {
	*Cluster
	Files    TLSFiles
	TLSPorts []int // of Nodes, in order
}

// StartTLSCluster starts a cluster as StartCluster does, each node with a
// TLS port beside its plain one (the plain ones for the test's own
// checks and for redis-cli); authClients is redis-server's
// tls-auth-clients. The nodes announce their TLS ports to TLS clients.
func StartTLSCluster(t testing.TB, masters, replicas int, authClients string) *TLSCluster {
	t.Helper()
	f := MakeTLSFiles(t)
	tc := &TLSCluster{Cluster: &Cluster{t: t}, Files: f}
	var addrs []string
	for range masters * (1 + replicas) {
		args, err := redisserver.ClusterNodeArgs()
		if err != nil {
			t.Fatal(err)
		}
		port, err := redisserver.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		s := Start(t, Option(args), Option{"--tls-port", strconv.Itoa(port), "--tls-cert-file", f.ServerCert,
			"--tls-key-file", f.ServerKey, "--tls-ca-cert-file", f.CA, "--tls-auth-clients", authClients,
			// The bus and replication links are TLS clients of the other
			// nodes, which ask for a client certificate.
			"--tls-client-cert-file", f.ClientCert, "--tls-client-key-file", f.ClientKey,
			"--tls-cluster", "yes", "--tls-replication", "yes"})
		tc.Nodes = append(tc.Nodes, s)
		tc.TLSPorts = append(tc.TLSPorts, port)
		addrs = append(addrs, s.Addr())
	}
	if err := redisserver.CreateCluster(context.Background(), addrs, replicas); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return tc
}

// TLSURL is the rediss:// URL of node i's TLS port.
func (c *TLSCluster) TLSURL(i int) string {
	return "rediss://127.0.0.1:" + strconv.Itoa(c.TLSPorts[i]) + "/0"
}

// StartClusterNode starts one cluster-enabled redis-server that serves no
// slot yet, stopped at the end of the test: a Redis Cluster that is not
// ready. CLUSTER ADDSLOTSRANGE 0 16383 makes it a one-node cluster; one
// slot left out, or removed with CLUSTER DELSLOTS, puts it down (every
// command answers CLUSTERDOWN).
func StartClusterNode(t testing.TB) *Server {
	t.Helper()
	args, err := redisserver.ClusterNodeArgs()
	if err != nil {
		t.Fatal(err)
	}
	return Start(t, Option(args))
}
