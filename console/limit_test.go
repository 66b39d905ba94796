package console

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (127.0.0.0/8 is all this machine's): the console sees another
// client.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{
		Transport:     &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// attempt is one login with token from cl: its status, Retry-After and
// body.
type attempt struct {
	status     int
	retryAfter string
	body       string
	err        error
}

func (f *fixture) loginFrom(cl *http.Client, token string) attempt {
	req, _ := http.NewRequest("POST", f.srv.URL+"/ui/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.srv.URL)
	resp, err := cl.Do(req)
	if err != nil {
		return attempt{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return attempt{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b)}
}

// burst sends n logins with token from cl at once and counts their
// statuses; every 429 must carry a Retry-After of whole seconds.
func (f *fixture) burst(cl *http.Client, token string, n int) map[int]int {
	f.t.Helper()
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		wg     sync.WaitGroup
		errs   []error
	)
	for range n {
		wg.Go(func() {
			a := f.loginFrom(cl, token)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case a.err != nil:
				errs = append(errs, a.err)
			case a.status == http.StatusTooManyRequests:
				if s, err := strconv.Atoi(a.retryAfter); err != nil || s < 1 {
					errs = append(errs, fmt.Errorf("429 with Retry-After %q", a.retryAfter))
				}
				if !strings.Contains(a.body, "Too many failed logins") {
					errs = append(errs, fmt.Errorf("429 without its explanation"))
				}
			}
			counts[a.status]++
		})
	}
	wg.Wait()
	for _, err := range errs {
		f.t.Error(err)
	}
	return counts
}

// TestLoginBruteForceLimited: 300 wrong tokens at once from one client:
// clientBurst are compared (401), the rest refused (429, Retry-After); the
// right token from that client is refused too while it is limited, and
// works from another client meanwhile. The clock is the fixture's, frozen:
// no bucket refills until the test moves it.
func TestLoginBruteForceLimited(t *testing.T) {
	f := newFixture(t, Options{Token: testToken})
	attacker, operator := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")

	counts := f.burst(attacker, "wrong-guess-0000", 300)
	if counts[http.StatusUnauthorized] != clientBurst || counts[http.StatusTooManyRequests] != 300-clientBurst {
		t.Fatalf("300 wrong logins at once: %v, want %d 401 and %d 429", counts, clientBurst, 300-clientBurst)
	}
	if a := f.loginFrom(attacker, testToken); a.status != http.StatusTooManyRequests {
		t.Errorf("the right token from the limited client: %d, want 429 (no answer tells a right token while limited)", a.status)
	}
	if a := f.loginFrom(operator, testToken); a.status != http.StatusSeeOther {
		t.Errorf("the right token from another client during the brute force: %d %s", a.status, a.err)
	}
	f.now = f.now.Add(clientEvery)
	if a := f.loginFrom(attacker, testToken); a.status != http.StatusSeeOther {
		t.Errorf("the right token once the client's bucket refilled: %d %s", a.status, a.err)
	}
}

// TestLoginLimitedOverall: many clients guessing together are limited by
// the global bucket: globalBurst wrong tokens are compared in all, then
// every client is refused, a new one with the right token too, until the
// global bucket refills.
func TestLoginLimitedOverall(t *testing.T) {
	f := newFixture(t, Options{Token: testToken})
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		wg     sync.WaitGroup
	)
	const clients = 12 // 12 × clientBurst = 60 attempts, twice globalBurst
	for i := range clients {
		cl := clientFrom(fmt.Sprintf("127.0.1.%d", i+1))
		wg.Go(func() {
			for range clientBurst {
				a := f.loginFrom(cl, "wrong-guess-1111")
				mu.Lock()
				counts[a.status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if counts[http.StatusUnauthorized] != globalBurst || counts[http.StatusTooManyRequests] != clients*clientBurst-globalBurst {
		t.Fatalf("%d wrong logins from %d clients: %v, want %d 401 and the rest 429", clients*clientBurst, clients, counts, globalBurst)
	}
	newcomer := clientFrom("127.0.2.1")
	a := f.loginFrom(newcomer, testToken)
	if a.status != http.StatusTooManyRequests || !strings.Contains(a.body, "from every client") {
		t.Errorf("a new client while every client is limited: %d, want 429 saying so", a.status)
	}
	f.now = f.now.Add(globalEvery)
	if a := f.loginFrom(newcomer, testToken); a.status != http.StatusSeeOther {
		t.Errorf("the right token once the global bucket refilled: %d %s", a.status, a.err)
	}
}

// TestLoginsForget: the clients whose buckets are full again are
// forgotten, so that knocking from many addresses does not grow memory.
func TestLoginsForget(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLogins(now)
	for i := range 3 * sweepAbove {
		l.reserve(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now) // past globalBurst, refused: their buckets stay full
	}
	if n := len(l.clients); n > sweepAbove+globalBurst {
		t.Errorf("%d clients kept after %d attempts, want at most %d", n, 3*sweepAbove, sweepAbove+globalBurst)
	}
}

func TestClientOf(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:4711":             "192.0.2.7",
		"[::ffff:192.0.2.7]:4711":    "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":          "fe80::/64",
		"not an address":             "not an address",
		"@":                          "@",
	} {
		r := (&http.Request{RemoteAddr: in}).WithContext(context.Background())
		if got := clientOf(r); got != want {
			t.Errorf("clientOf(%q) = %q, want %q", in, got, want)
		}
	}
}
