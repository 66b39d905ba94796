package console

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Failed logins are limited by two token buckets: one per client (its IP
// address; an IPv6 client by its /64, which one machine usually holds
// whole) and one for every client together. An attempt takes one token
// from each before the token given is compared; a right token gives them
// back, a wrong one leaves them taken. An attempt that finds either bucket
// empty is refused at once (429 with Retry-After) without a comparison, so
// that no answer tells a right token from a wrong one while guessing is
// limited. A client's guesses thus cost the others nothing until the
// global bucket runs dry, which only many clients together can make it do.
//
// Figures: a client may fail clientBurst times in a row, then once every
// clientEvery; every client together globalBurst times, then once every
// globalEvery (3,600 guesses an hour at most, against the 230 a second
// that a console without them answered).
const (
	clientBurst = 5
	clientEvery = 10 * time.Second
	globalBurst = 30
	globalEvery = time.Second
	// sweepAbove is the number of clients kept above which the buckets
	// that have refilled are forgotten. Only failed comparisons leave a
	// bucket below full, and the global bucket bounds those, so the map
	// stays small whoever knocks.
	sweepAbove = 1024
)

// bucket is a token bucket: tokens at the time at, up to burst, one more
// every every.
type bucket struct {
	tokens  float64
	at      time.Time
	limited bool // its last attempt was refused (logged once per stretch)
}

func (b *bucket) refill(now time.Time, burst int, every time.Duration) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+float64(d)/float64(every))
	}
	b.at = now
}

// wait is how long until b holds a whole token again.
func (b *bucket) wait(every time.Duration) time.Duration {
	return time.Duration((1 - b.tokens) * float64(every))
}

// logins limits failed logins; its zero value is not ready: use newLogins.
type logins struct {
	mu      sync.Mutex
	global  bucket
	clients map[string]*bucket
}

func newLogins(now time.Time) *logins {
	return &logins{global: bucket{tokens: globalBurst, at: now}, clients: map[string]*bucket{}}
}

// refusal says why an attempt was refused: after how long to try again,
// and whether every client is limited (the global bucket is dry) or only
// this one; firstTime is set on the first refusal of a stretch, to be
// logged.
type refusal struct {
	retryAfter time.Duration
	everyone   bool
	firstTime  bool
}

// reserve takes a token for one attempt of client, or says why not.
func (l *logins) reserve(client string, now time.Time) *refusal {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.clients[client]
	if c == nil {
		if len(l.clients) >= sweepAbove {
			l.sweep(now)
		}
		c = &bucket{tokens: clientBurst, at: now}
		l.clients[client] = c
	}
	c.refill(now, clientBurst, clientEvery)
	l.global.refill(now, globalBurst, globalEvery)
	switch {
	case c.tokens < 1:
		r := &refusal{retryAfter: c.wait(clientEvery), firstTime: !c.limited}
		c.limited = true
		return r
	case l.global.tokens < 1:
		r := &refusal{retryAfter: l.global.wait(globalEvery), everyone: true, firstTime: !l.global.limited}
		l.global.limited = true
		return r
	}
	c.tokens--
	l.global.tokens--
	c.limited, l.global.limited = false, false
	return nil
}

// release gives back the tokens of an attempt that gave the right token.
func (l *logins) release(client string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.clients[client]; c != nil {
		c.refill(now, clientBurst, clientEvery)
		c.tokens = math.Min(clientBurst, c.tokens+1)
	}
	l.global.refill(now, globalBurst, globalEvery)
	l.global.tokens = math.Min(globalBurst, l.global.tokens+1)
}

// sweep forgets the clients whose buckets are full again.
func (l *logins) sweep(now time.Time) {
	for k, b := range l.clients {
		if b.refill(now, clientBurst, clientEvery); b.tokens >= clientBurst {
			delete(l.clients, k)
		}
	}
}

// clientOf is the client a request is counted against: its IPv4 address,
// or the /64 of its IPv6 address. Behind a reverse proxy every request
// comes from the proxy: the clients share one bucket.
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if a = a.Unmap(); a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1: the
// value of a Retry-After header.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
