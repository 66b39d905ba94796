package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// checkRetry is the retry policy: retry connection errors, timeouts, 5xx,
// 408 and 429, nothing else, and nothing once ctx is done or the host's
// breaker is open (other fetches found the host failing meanwhile).
func (f *call) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil && !transient(err) || err == nil && !retryableStatus(resp.StatusCode) {
		return false, nil
	}
	f.last = err
	if err := f.b.openError(); err != nil {
		return false, err
	}
	if log := f.c.log; log.Enabled(ctx, slog.LevelDebug) {
		if err != nil {
			log.DebugContext(ctx, "fetch failed, retrying", "url", requestURL(resp, err), "error", withoutURL(err).Error())
		} else {
			log.DebugContext(ctx, "fetch failed, retrying", "url", requestURL(resp, nil), "status", resp.StatusCode)
		}
	}
	return true, nil
}

// prepareRetry is called by retryablehttp after the wait before a retry: it
// stops the fetch when ctx was cancelled or the breaker opened meanwhile.
func (f *call) prepareRetry(req *http.Request) error {
	if err := req.Context().Err(); err != nil {
		return err
	}
	if err := f.b.openError(); err != nil {
		return err
	}
	f.attempts++
	return nil
}

func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// transient reports whether an error of the HTTP client or of reading the
// body may go away on a new attempt: timeouts and connection errors.
func transient(err error) bool {
	var fe *Error
	if errors.As(err, &fe) {
		return !fe.Permanent
	}
	err = withoutURL(err) // *url.Error is a net.Error, whatever its cause
	var (
		verifyErr    *tls.CertificateVerificationError
		authorityErr x509.UnknownAuthorityError
		hostnameErr  x509.HostnameError
		invalidErr   x509.CertificateInvalidError
		recordErr    tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &verifyErr), errors.As(err, &authorityErr), errors.As(err, &hostnameErr),
		errors.As(err, &invalidErr), errors.As(err, &recordErr):
		return false // the server's certificate or protocol is wrong
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true // connection closed early
	}
	var ne net.Error
	return errors.As(err, &ne) // timeouts, dial, read and write errors, DNS
}

// withoutURL drops the *url.Error wrapper of err, whose text repeats the
// URL unredacted.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// requestURL is the redacted URL of a request, for logs.
func requestURL(resp *http.Response, err error) string {
	if resp != nil && resp.Request != nil {
		return Redact(resp.Request.URL.String())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return Redact(ue.URL)
	}
	return ""
}

// backoff is the wait before retry n (from 0): the jittered backoff, or
// the wait a Retry-After header of the response asks for when it is longer;
// never more than hi, so that a server cannot park a fetch for an hour.
func backoff(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
	d := jitteredBackoff(lo, hi, n)
	if ra, ok := retryAfter(resp, time.Now()); ok && ra > d {
		d = min(ra, hi)
	}
	return d
}

// jitteredBackoff waits between half and all of lo·2ⁿ before retry n,
// capped at hi.
func jitteredBackoff(lo, hi time.Duration, n int) time.Duration {
	d := hi
	if n < 32 {
		if e := lo << n; e > 0 && e < hi {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}

// retryAfter is the wait the Retry-After header of resp asks for, in
// seconds or as an HTTP date (0 for a date past at now); ok is false
// without a valid header.
func retryAfter(resp *http.Response, now time.Time) (d time.Duration, ok bool) {
	if resp == nil {
		return 0, false
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		if secs > math.MaxInt64/uint64(time.Second) {
			return math.MaxInt64, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// attemptsError is what giveUp passes to failure.
type attemptsError struct {
	status int   // of the last response, 0 without one
	err    error // why the retries stopped; nil when the last status failed
}

func (e *attemptsError) Error() string { return "giving up" }

// giveUp is the retryablehttp.ErrorHandler: it closes the last response and
// reports what failed to failure.
func giveUp(resp *http.Response, err error, _ int) (*http.Response, error) {
	status := 0
	if resp != nil {
		status = resp.StatusCode
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // to reuse the connection
		resp.Body.Close()
	}
	return nil, &attemptsError{status: status, err: err}
}

// failure turns what retryablehttp returned into an *Error.
func (f *call) failure(ctx context.Context, err error) *Error {
	e := &Error{URL: f.url, Attempts: f.attempts}
	if ctx.Err() != nil {
		e.Err, e.cancelled = ctx.Err(), true
		return e
	}
	ae, ok := err.(*attemptsError)
	if !ok { // not expected: retryablehttp calls giveUp on every failure
		e.Err = withoutURL(err)
		return e
	}
	var fe *Error
	switch {
	case errors.Is(ae.err, ErrCircuitOpen): // the breaker opened during the retries
		last := withoutURL(f.last)
		switch {
		case errors.As(last, &fe):
			e.Status, last = fe.Status, fe.Err
		case last == nil:
			e.Status, last = ae.status, statusError(ae.status)
		}
		e.Err = fmt.Errorf("%s, %w: %w", attempts(f.attempts), ae.err, last)
	case errors.As(ae.err, &fe):
		e.Status, e.Permanent, e.Err = fe.Status, fe.Permanent, fe.Err
	case ae.err == nil: // a retryable status, to the last attempt
		e.Status = ae.status
		e.Err = fmt.Errorf("%s: %w", attempts(f.attempts), statusError(ae.status))
	case transient(ae.err):
		e.Err = fmt.Errorf("%s: %w", attempts(f.attempts), withoutURL(ae.err))
	default:
		e.Permanent, e.Err = true, withoutURL(ae.err)
	}
	return e
}

func attempts(n int) string {
	if n == 1 {
		return "giving up after 1 attempt"
	}
	return fmt.Sprintf("giving up after %d attempts", n)
}
