package watcher

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

// hostSlots bound the fetches of a watcher per host (scheme, host and
// port): at most fetch_concurrency in flight per host, and never more than
// three quarters of the watcher's concurrency slots, so that a slow host
// leaves slots to the events bound elsewhere or needing no fetch. An event
// whose host has no free slot waits for one, but not longer than
// hostWait: then it is scheduled again (host busy) instead of holding its
// watcher slot. A host that answers fast frees slots long before that (no
// event bounces); a slow one costs the others at most hostWait.
type hostSlots struct {
	inFlight int           // fetches in flight per host
	wait     time.Duration // the longest wait for a slot
	mu       sync.Mutex
	m        map[string]*hostSlot
}

// hostWait is how long an event waits for a fetch slot of its host before
// it is scheduled again.
const hostWait = 2 * time.Second

type hostSlot struct {
	sem     chan struct{}
	waiting int // guarded by hostSlots.mu
}

// newHostSlots shares the concurrency watcher slots: at most
// fetchConcurrency in flight per host, and at most three quarters of the
// slots (at least one).
func newHostSlots(fetchConcurrency, concurrency int, wait time.Duration) *hostSlots {
	inFlight := max(min(fetchConcurrency, concurrency-concurrency/4), 1)
	return &hostSlots{inFlight: inFlight, wait: wait, m: map[string]*hostSlot{}}
}

// errHostBusy is why an event is scheduled again without counting an
// attempt: its host had no free fetch slot for the longest wait.
type errHostBusy struct {
	host     string
	inFlight int
	waited   time.Duration
}

func (e *errHostBusy) Error() string {
	return fmt.Sprintf("host %s busy: %d fetches in flight, no slot within %v", e.host, e.inFlight, e.waited)
}

// acquire takes a fetch slot of the host of rawURL, waiting up to h.wait
// for one (then *errHostBusy). It returns ctx.Err() when ctx ends first.
// release gives the slot back.
func (h *hostSlots) acquire(ctx context.Context, rawURL string) (release func(), err error) {
	host := hostOf(rawURL)
	h.mu.Lock()
	s := h.m[host]
	if s == nil {
		s = &hostSlot{sem: make(chan struct{}, h.inFlight)}
		h.m[host] = s
	}
	release = func() {
		h.mu.Lock()
		<-s.sem
		h.forget(host, s)
		h.mu.Unlock()
	}
	select {
	case s.sem <- struct{}{}:
		h.mu.Unlock()
		return release, nil
	default:
	}
	s.waiting++
	h.mu.Unlock()
	timer := time.NewTimer(h.wait)
	defer timer.Stop()
	select {
	case s.sem <- struct{}{}:
		err = nil
	case <-timer.C:
		err = &errHostBusy{host: host, inFlight: h.inFlight, waited: h.wait}
	case <-ctx.Done():
		err = ctx.Err()
	}
	h.mu.Lock()
	s.waiting--
	if err != nil {
		h.forget(host, s)
	}
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return release, nil
}

// forget drops the slot of a host nobody uses any more (host names may come
// from event data: the map must not grow for ever). h.mu is held.
func (h *hostSlots) forget(host string, s *hostSlot) {
	if len(s.sem) == 0 && s.waiting == 0 {
		delete(h.m, host)
	}
}

// hostOf is the scheme, host and port of rawURL, lower-cased, the port
// made explicit (as the fetch client's breakers see hosts); the whole text
// when it does not parse (the fetch then fails on its own).
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return rawURL
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	return strings.ToLower(u.Scheme + "://" + net.JoinHostPort(u.Hostname(), port))
}
