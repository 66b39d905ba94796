package fetch

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/resc-go/resc/config"
)

// ErrCircuitOpen is wrapped by the error of a fetch that the circuit
// breaker of its host refused, or stopped retrying: fetches to the host
// failed breaker_failures times in a row. Such a failure is transient.
var ErrCircuitOpen = errors.New("circuit open")

// breaker is the circuit breaker of a host, for the fetches of one set of
// breaker settings.
//
// What it counts: a fetch is one request to the breaker, its retries
// included. It fails when it ends in a transient failure (the retries did
// not help), or in a permanent one that is the host's: a body that is not
// the expected JSON or is too large, a TLS certificate refused. It succeeds
// when it gets its results, or a 4xx status other than 408 and 429: the host
// answered, the request was wrong. A fetch whose ctx was done is not
// counted. breaker_failures fetches failing in a row open the breaker.
type breaker struct {
	host string // scheme://host:port, in messages
	cb   *gobreaker.CircuitBreaker[[]map[string]string]
}

// breakerKey identifies a breaker: a host, and the breaker settings of the
// fetches that share it.
type breakerKey struct {
	host     string
	failures int
	open     time.Duration
	halfOpen int
}

// breaker returns the breaker of the host of u for settings s, creating it
// on first use.
func (c *Client) breaker(u *url.URL, s *config.FetchSettings) *breaker {
	k := breakerKey{host: hostKey(u), failures: s.BreakerFailures, open: s.BreakerOpen, halfOpen: s.BreakerHalfOpen}
	c.mu.RLock()
	b := c.breakers[k]
	c.mu.RUnlock()
	if b != nil {
		return b
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b = c.breakers[k]; b == nil {
		b = c.newBreaker(k)
		c.breakers[k] = b
	}
	return b
}

func (c *Client) newBreaker(k breakerKey) *breaker {
	return &breaker{host: k.host, cb: gobreaker.NewCircuitBreaker[[]map[string]string](gobreaker.Settings{
		Name:        k.host,
		MaxRequests: uint32(k.halfOpen),
		Interval:    0, // consecutive failures count, never cleared while closed
		Timeout:     k.open,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			return n.ConsecutiveFailures >= uint32(k.failures)
		},
		OnStateChange: func(host string, from, to gobreaker.State) {
			switch to {
			case gobreaker.StateOpen:
				c.log.Warn("fetch circuit open: fetches to this host fail at once", "host", host, "from", from.String(), "for", k.open)
			case gobreaker.StateHalfOpen:
				c.log.Info("fetch circuit half-open: probing the host", "host", host)
			case gobreaker.StateClosed:
				c.log.Warn("fetch circuit closed: the host answers again", "host", host)
			}
		},
		IsSuccessful: hostAnswered,
		IsExcluded:   cancelled,
	})}
}

// hostKey is the scheme, host and port of u, the port made explicit.
func hostKey(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// hostAnswered tells whether the fetch that returned err found its host
// working: it succeeded, or got a 4xx status that says the request is wrong.
func hostAnswered(err error) bool {
	var fe *Error
	return err == nil || errors.As(err, &fe) && fe.Permanent && fe.Status >= 400 && fe.Status <= 499
}

// cancelled tells whether err is a fetch stopped by its ctx.
func cancelled(err error) bool {
	var fe *Error
	return errors.As(err, &fe) && fe.cancelled
}

// openError is the error of a fetch that must stop because the breaker is
// open, nil when it is not (or b is nil). A half-open breaker does not stop
// a fetch: it let it through as a probe.
func (b *breaker) openError() error {
	if b == nil || b.cb.State() != gobreaker.StateOpen {
		return nil
	}
	return fmt.Errorf("%w for host %s", ErrCircuitOpen, b.host)
}

// refused is the error of a fetch that the breaker refused with err.
func (b *breaker) refused(err error) error {
	if errors.Is(err, gobreaker.ErrTooManyRequests) {
		return fmt.Errorf("%w for host %s (half-open: waiting for its probes)", ErrCircuitOpen, b.host)
	}
	return fmt.Errorf("%w for host %s", ErrCircuitOpen, b.host)
}
