package fetch

import (
	"errors"
	"net/url"
	"strings"
)

// Error is a failed fetch.
type Error struct {
	// URL is the URL as requested. It may hold secrets: Error() writes it
	// through Redact, and so should anyone logging it.
	URL string
	// Status is the HTTP status of the response when the failure is its
	// status (a 404, a 500 still there after the last retry); 0 otherwise.
	Status int
	// Permanent is true when trying again cannot help: a 4xx status other
	// than 408 and 429, a body that is not the expected JSON or is too
	// large, an invalid URL, a TLS certificate refused. A transient failure
	// (connection error, timeout, 5xx, 408, 429) that outlived the retries,
	// a fetch refused or stopped by an open circuit breaker (Err wraps
	// ErrCircuitOpen), and a cancelled ctx, are not permanent.
	Permanent bool
	// Attempts is how many HTTP requests the fetch made: 0 when it made
	// none (an invalid URL, an open circuit breaker).
	Attempts int
	// Err is the cause. It never repeats the URL.
	Err error

	cancelled bool // stopped by its ctx: the breaker does not count it
}

func (e *Error) Error() string {
	msg := "failed"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	return "fetch GET " + Redact(e.URL) + ": " + msg
}

func (e *Error) Unwrap() error { return e.Err }

// IsPermanent reports whether err is (or wraps) a permanent fetch failure:
// the event should go to the dead-letter list rather than be tried again.
func IsPermanent(err error) bool {
	var fe *Error
	return errors.As(err, &fe) && fe.Permanent
}

// redacted replaces a password and query values in Redact's result.
const redacted = "xxxxx"

// Redact returns rawURL fit for a log or an error message: the password of
// its userinfo and the value of each query parameter are replaced by
// "xxxxx" (as net/url's URL.Redacted does for the password). It works on
// text that does not parse as a URL too.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return redactText(rawURL)
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), redacted)
	}
	if u.RawQuery != "" {
		u.RawQuery = redactQuery(u.RawQuery)
	}
	return u.String()
}

// redactQuery replaces the value of each parameter of a raw query; a
// parameter without "=" is replaced as a whole, for it may be a secret.
func redactQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		if p == "" {
			continue
		}
		if k, _, ok := strings.Cut(p, "="); ok {
			parts[i] = k + "=" + redacted
		} else {
			parts[i] = redacted
		}
	}
	return strings.Join(parts, "&")
}

// redactText redacts a URL that url.Parse refuses, as text.
func redactText(s string) string {
	s, q, hasQuery := strings.Cut(s, "?")
	if i := strings.Index(s, "://"); i >= 0 {
		host := i + 3
		auth := s[host:]
		if j := strings.IndexByte(auth, '/'); j >= 0 {
			auth = auth[:j]
		}
		if at := strings.LastIndexByte(auth, '@'); at >= 0 {
			if colon := strings.IndexByte(auth[:at], ':'); colon >= 0 {
				s = s[:host+colon+1] + redacted + s[host+at:]
			}
		}
	}
	if hasQuery {
		s += "?" + redactQuery(q)
	}
	return s
}
