package redisconn

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// reloadOnFailure makes a cluster client ask the cluster for its slot map
// again when a node cannot be reached, at most every reloadEvery: after a
// master failover go-redis would otherwise keep sending the slot's
// commands to the dead master until its periodic reload (about 10 s),
// longer than a replica's lease.
type reloadOnFailure struct {
	c    *redis.ClusterClient
	last atomic.Int64 // Unix ns of the last reload asked
}

const reloadEvery = 200 * time.Millisecond

func (h *reloadOnFailure) failed(err error) {
	var re redis.Error
	if err == nil || errors.As(err, &re) || errors.Is(err, context.Canceled) {
		if err == nil || !isClusterDown(err) {
			return
		}
	}
	now := time.Now().UnixNano()
	last := h.last.Load()
	if now-last < int64(reloadEvery) || !h.last.CompareAndSwap(last, now) {
		return
	}
	go h.c.ReloadState(context.Background())
}

// isClusterDown tells the replies of a cluster that is reconfiguring.
func isClusterDown(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return len(msg) >= 11 && (msg[:11] == "CLUSTERDOWN" || msg[:8] == "TRYAGAIN")
}

func (h *reloadOnFailure) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		h.failed(err)
		return c, err
	}
}

func (h *reloadOnFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.failed(err)
		return err
	}
}

func (h *reloadOnFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.failed(err)
		return err
	}
}
