package redistest

import (
	"context"
	"os/exec"
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
	args := []string{"--cluster", "create"}
	for range masters * (1 + replicas) {
		bus, err := redisserver.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		s := Start(t, Option{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000", "--cluster-port", strconv.Itoa(bus)})
		c.Nodes = append(c.Nodes, s)
		args = append(args, s.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.AwaitOK(30 * time.Second)
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
	for _, n := range c.Nodes {
		if n.stopped() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr()})
		for {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				cl.Close()
				c.t.Fatalf("redistest: node %s not ok after %v: %v %s", n.Addr(), timeout, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cl.Close()
	}
}
