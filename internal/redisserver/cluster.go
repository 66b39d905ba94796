package redisserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterNodeArgs are the redis-server arguments of a Redis Cluster node,
// its cluster bus on a port of its own found free. Replicas sync at once
// and may always fail over: tests kill masters seconds after the cluster
// is made.
func ClusterNodeArgs() ([]string, error) {
	bus, err := FreePort()
	if err != nil {
		return nil, err
	}
	return []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "1000", "--cluster-port", strconv.Itoa(bus),
		"--repl-diskless-sync-delay", "0", "--cluster-replica-validity-factor", "0"}, nil
}

// CreateCluster joins the cluster nodes at addrs (started with
// ClusterNodeArgs) into a cluster with `redis-cli --cluster create`, the
// first len(addrs)/(1+replicas) becoming the masters, and returns once
// every node reports cluster_state:ok and every replica's link to its
// master is up.
func CreateCluster(ctx context.Context, addrs []string, replicas int) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		err := awaitNode(ctx, c, len(addrs)/(1+replicas))
		c.Close()
		if err != nil {
			return fmt.Errorf("cluster node %s: %w", addr, err)
		}
	}
	return nil
}

// awaitNode waits until c's node is part of a healthy cluster: state ok,
// masters masters known and, for a replica, its link to the master up.
func awaitNode(ctx context.Context, c *redis.Client, masters int) error {
	var last string
	for {
		info, err := c.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") && InfoField(info, "cluster_size") == strconv.Itoa(masters) {
			repl, rerr := c.Info(ctx, "replication").Result()
			role := InfoField(repl, "role")
			if rerr == nil && (role == "master" || InfoField(repl, "master_link_status") == "up") {
				return nil
			}
			info, err = repl, rerr
		}
		last = fmt.Sprint(err, " ", info)
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready in time: %s", last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StartCluster starts a cluster of masters master nodes (1 or more) and no
// replicas, their files in subdirectories of dir, for programs (the load
// generator) that need one outside a test. The slots are split evenly, in
// order: node i serves the i-th range. redis-cli --cluster create wants 3
// masters at least, so the slots are assigned and the nodes met directly.
// Stop the nodes with Kill.
func StartCluster(ctx context.Context, dir string, masters int) (nodes []*Server, err error) {
	defer func() {
		if err != nil {
			for _, n := range nodes {
				n.Kill()
			}
			nodes = nil
		}
	}()
	var buses []string
	for i := range masters {
		args, err := ClusterNodeArgs()
		if err != nil {
			return nodes, err
		}
		buses = append(buses, args[slices.Index(args, "--cluster-port")+1])
		sub := filepath.Join(dir, "node-"+strconv.Itoa(i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nodes, err
		}
		n, err := Start(ctx, sub, args...)
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, n)
	}
	for i, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addr()})
		err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", i*16384/masters, (i+1)*16384/masters-1).Err()
		for j, o := range nodes[:i] {
			if err == nil {
				err = c.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", o.Port(), buses[j]).Err()
			}
		}
		c.Close()
		if err != nil {
			return nodes, fmt.Errorf("cluster node %s: %w", n.Addr(), err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addr()})
		err := awaitNode(ctx, c, masters)
		c.Close()
		if err != nil {
			return nodes, fmt.Errorf("cluster node %s: %w", n.Addr(), err)
		}
	}
	return nodes, nil
}
