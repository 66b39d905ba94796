package watcher

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
)

// hostSlots bound the fetches of a watcher per host (scheme and authority):
// at most fetch_concurrency in flight and as many waiting for a slot. An
// event whose host has both full is not held: it is scheduled again (host
// busy), so that a slow host holds at most twice fetch_concurrency of the
// watcher's slots and never blocks events bound elsewhere.
type hostSlots struct {
	size int
	mu   sync.Mutex
	m    map[string]*hostSlot
}

type hostSlot struct {
	sem     chan struct{}
	waiting int // guarded by hostSlots.mu
}

func newHostSlots(size int) *hostSlots {
	return &hostSlots{size: size, m: map[string]*hostSlot{}}
}

// errHostBusy is why an event is scheduled again without counting an
// attempt: its host has every fetch slot taken and as many events waiting.
type errHostBusy struct {
	host string
	n    int
}

func (e *errHostBusy) Error() string {
	return fmt.Sprintf("host %s busy: %d fetches in flight and %d waiting", e.host, e.n, e.n)
}

// acquire takes a fetch slot of the host of rawURL, waiting for one unless
// too many wait already (*errHostBusy). It returns ctx.Err() when ctx ends
// first. release gives the slot back.
func (h *hostSlots) acquire(ctx context.Context, rawURL string) (release func(), err error) {
	host := hostOf(rawURL)
	h.mu.Lock()
	s := h.m[host]
	if s == nil {
		s = &hostSlot{sem: make(chan struct{}, h.size)}
		h.m[host] = s
	}
	select {
	case s.sem <- struct{}{}:
		h.mu.Unlock()
		return func() { <-s.sem }, nil
	default:
	}
	if s.waiting >= h.size {
		h.mu.Unlock()
		return nil, &errHostBusy{host: host, n: h.size}
	}
	s.waiting++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		s.waiting--
		h.mu.Unlock()
	}()
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// hostOf is the scheme and authority of rawURL, lower-cased; the whole
// text when it does not parse (the fetch then fails on its own).
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return rawURL
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}
