package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// transientReplies are the error replies of a server that will answer
// again by itself: loading its data, busy with a script, a replica being
// promoted, a cluster reconfiguring or missing slots, out of memory for
// now.
var transientReplies = []string{"LOADING", "BUSY", "READONLY", "MASTERDOWN", "OOM", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"}

// Transient reports whether err is worth waiting out: a network failure
// or timeout (but an address no dial can reach), or an error reply of a
// server in a passing state (LOADING, BUSY, READONLY, MASTERDOWN, OOM,
// TRYAGAIN, CLUSTERDOWN, NOREPLICAS). Any other error reply (a refused
// password or permission, a wrong type, a script's refusal) is not: the
// same call will get the same answer.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return !impossibleAddress(err)
	}
	msg := re.Error()
	for _, p := range transientReplies {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// impossibleAddress tells a dial that failed on the address itself (a
// port out of range, a malformed address), which no wait mends, from
// a server that is not there yet.
func impossibleAddress(err error) bool {
	var ae *net.AddrError
	return errors.As(err, &ae) || strings.Contains(err.Error(), "invalid port")
}

// refusedCredentials tells an error reply refusing the user or password.
func refusedCredentials(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH") ||
		strings.HasPrefix(msg, "ERR invalid password") || strings.HasPrefix(msg, "ERR AUTH") ||
		strings.Contains(msg, "invalid username-password pair")
}

// credentialsError is the setup error of a server at addr refusing the
// credentials: no retry mends it.
func credentialsError(addr string, err error) error {
	return errorf("Redis at %s refused the user or password (%v): check redis.username, redis.password or redis.password_file, %s, %s and the URL's user info",
		addr, err, EnvUsername, EnvPassword)
}

// certificateError is the setup error of a TLS certificate refused on
// either side (tlsProblem): a setting to change, which no wait mends. It
// unwraps to the TLS failure.
func certificateError(addr string, err error) error {
	return &Error{msg: fmt.Sprintf("Redis at %s: %s", addr, tlsProblem(err)), err: err}
}

// await waits, retrying with backoff and a warning at each attempt, until
// c answers a PING: the start of a replica waits for a Redis that is not
// up yet, or not ready (loading, a cluster without its slots). What no
// wait mends is returned at once as an *Error: refused credentials, a
// refused TLS certificate, an impossible address. Any other answer of the
// server counts as an answer.
func await(ctx context.Context, c *Client, o Options) error {
	delay := 100 * time.Millisecond
	started := time.Now()
	for {
		err := c.Ping(ctx).Err()
		switch {
		case err == nil:
			if o.Logger != nil && time.Since(started) > delay {
				o.Logger.Warn("Redis answers", "addr", c.Addr, "waited", time.Since(started).Round(time.Millisecond))
			}
			return nil
		case ctx.Err() != nil:
			//lint:ignore ST1005 the message of every command that cannot reach Redis starts so
			return fmt.Errorf("Redis at %s did not answer: %w", c.Addr, ctx.Err())
		case refusedCredentials(err):
			return credentialsError(c.Addr, err)
		case tlsProblem(err) != "":
			return certificateError(c.Addr, err)
		case !Transient(err) && isServerError(err):
			return nil // the server answered; the caller's commands will tell the rest
		case !Transient(err):
			return errorf("Redis at %s cannot be reached: %v", c.Addr, err)
		}
		if o.Logger != nil {
			o.Logger.Warn("waiting for Redis: it does not answer or is not ready yet; retrying", "addr", c.Addr, "err", err,
				"retry_in", delay, "waiting_for", time.Since(started).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			//lint:ignore ST1005 as above
			return fmt.Errorf("Redis at %s did not answer: %w", c.Addr, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}
