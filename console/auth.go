package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sessions: an operator who gives the token at /ui/login gets a cookie
// "<nonce>.<mac>", mac = HMAC-SHA256(token, "session:"+nonce). Every form
// that changes something carries the session's CSRF token,
// HMAC-SHA256(token, "csrf:"+nonce), checked with the cookie on POST, and
// a POST from another origin is refused whatever it carries. Nothing is
// stored on the server: changing the token ends every session.

const (
	sessionCookie = "resc_ui_session"
	sessionTTL    = 12 * time.Hour
)

// auth checks sessions and CSRF tokens against the console's token.
type auth struct {
	token []byte // empty: read-only, no session can be opened
}

func (a auth) enabled() bool { return len(a.token) > 0 }

func (a auth) mac(purpose, nonce string) string {
	m := hmac.New(sha256.New, a.token)
	m.Write([]byte(purpose + ":" + nonce))
	return hex.EncodeToString(m.Sum(nil))
}

// checkToken compares a token given at login, in constant time.
func (a auth) checkToken(given string) bool {
	return a.enabled() && subtle.ConstantTimeCompare([]byte(given), a.token) == 1
}

// newSession is the cookie of a new session, valid until now+sessionTTL.
func (a auth) newSession(r *http.Request, path string, now time.Time) *http.Cookie {
	var b [16]byte
	_, _ = rand.Read(b[:])
	nonce := hex.EncodeToString(b[:]) + "-" + strconv.FormatInt(now.Add(sessionTTL).Unix(), 10)
	return &http.Cookie{
		Name: sessionCookie, Value: nonce + "." + a.mac("session", nonce), Path: path,
		MaxAge: int(sessionTTL.Seconds()), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	}
}

// session returns the nonce of r's valid, unexpired session, or "".
func (a auth) session(r *http.Request, now time.Time) string {
	if !a.enabled() {
		return ""
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	nonce, mac, ok := strings.Cut(c.Value, ".")
	if !ok || nonce == "" || !hmac.Equal([]byte(mac), []byte(a.mac("session", nonce))) {
		return ""
	}
	_, exp, _ := strings.Cut(nonce, "-")
	if until, err := strconv.ParseInt(exp, 10, 64); err != nil || now.Unix() >= until {
		return ""
	}
	return nonce
}

// csrf is the CSRF token of the session nonce.
func (a auth) csrf(nonce string) string {
	if nonce == "" {
		return ""
	}
	return a.mac("csrf", nonce)
}

// checkCSRF reports whether the form of r carries its session's CSRF
// token.
func (a auth) checkCSRF(r *http.Request, nonce string) bool {
	given := r.PostFormValue("csrf")
	return nonce != "" && given != "" && hmac.Equal([]byte(given), []byte(a.csrf(nonce)))
}

// sameOrigin reports whether a state-changing request comes from the
// console's own pages: its Origin (sent by every current browser on POST)
// names the host it was sent to, or, without Origin, its Sec-Fetch-Site
// says same-origin or none (typed by the user). A request with neither,
// from a script rather than a browser, passes this test: the session and
// CSRF checks still apply.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && o != "null" && strings.EqualFold(u.Host, r.Host)
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}
