// Package fetch GETs the JSON that fetch rules enrich their tasks with.
//
// A fetch is one HTTP GET, retried on transient failures (connection errors,
// timeouts, 5xx, 408 and 429) with a jittered exponential backoff, through
// github.com/hashicorp/go-retryablehttp. The response body, read through a
// size limit, must be a JSON object or an array of objects; each object is
// one result, whose string and number properties are its variables (numbers
// written exactly as the JSON wrote them) and whose other properties are
// ignored.
//
// Failures are *Error values, telling permanent failures (the event should
// go to the dead-letter list) from transient ones that outlived the retries
// (the event may be tried again later).
package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/resc-go/resc/config"
)

// Backoff bounds: the wait before retry n (from 0) is drawn between half and
// all of min·2ⁿ, capped at max.
const (
	retryWaitMin = 100 * time.Millisecond
	retryWaitMax = 2 * time.Second
)

// userAgent is sent with every request.
const userAgent = "resc-go"

// Client fetches URLs. It is safe for concurrent use.
type Client struct {
	rc      *retryablehttp.Client
	maxBody int64
	log     *slog.Logger
}

// New returns a client with settings s: Timeout limits each attempt
// (including reading the body), Retries is how many times a transient
// failure is retried, MaxBody the largest body read. Zero (or negative)
// Timeout and MaxBody take config's defaults; a negative Retries is 0.
// Retries are logged at debug level on log (nil: no log).
func New(s config.FetchSettings, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if s.Timeout <= 0 {
		s.Timeout = config.DefaultFetchTimeout
	}
	if s.MaxBody <= 0 {
		s.MaxBody = config.DefaultFetchMaxBody
	}
	if s.Retries < 0 {
		s.Retries = 0
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Fetch rules tend to GET many URLs of the same few hosts at once.
	transport.MaxIdleConnsPerHost = 64
	c := &Client{maxBody: s.MaxBody, log: log}
	c.rc = &retryablehttp.Client{
		HTTPClient:   &http.Client{Transport: transport, Timeout: s.Timeout},
		Logger:       nil, // retries are logged by checkRetry, with URLs redacted
		RetryWaitMin: retryWaitMin,
		RetryWaitMax: retryWaitMax,
		RetryMax:     s.Retries,
		CheckRetry:   c.checkRetry,
		Backoff:      jitteredBackoff,
		ErrorHandler: giveUp,
	}
	return c
}

// Fetch GETs rawURL and returns its results: one map per JSON object of the
// body, from property name to value. Transient failures are retried as the
// settings say, waiting between attempts; ctx bounds the whole fetch, retries
// and waits included, and once it is done nothing is retried and the error
// wraps ctx.Err(). Every error is an *Error.
func (c *Client) Fetch(ctx context.Context, rawURL string) ([]map[string]string, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, &Error{URL: rawURL, Permanent: true, Err: withoutURL(err)}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)

	var results []map[string]string
	req.SetResponseHandler(func(resp *http.Response) error {
		// Called on a response that is not to be retried. An error it
		// returns goes through checkRetry: read errors may be retried.
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return &Error{Status: resp.StatusCode, Permanent: true, Err: statusError(resp.StatusCode)}
		}
		var err error
		results, err = c.read(resp)
		return err
	})

	resp, err := c.rc.Do(req)
	if err != nil {
		return nil, failure(ctx, rawURL, err)
	}
	resp.Body.Close()
	return results, nil
}

// read reads and parses the body of a 2xx response. A failure to read is
// returned as is, for checkRetry to classify; the others are permanent.
func (c *Client) read(resp *http.Response) ([]map[string]string, error) {
	if resp.ContentLength > c.maxBody {
		return nil, &Error{Permanent: true, Err: fmt.Errorf("response body of %d bytes exceeds the limit of %d bytes", resp.ContentLength, c.maxBody)}
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, c.maxBody+1)); err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	if int64(buf.Len()) > c.maxBody {
		return nil, &Error{Permanent: true, Err: fmt.Errorf("response body exceeds the limit of %d bytes", c.maxBody)}
	}
	results, err := parse(buf.Bytes())
	if err != nil {
		return nil, &Error{Permanent: true, Err: err}
	}
	return results, nil
}

// ErrUnexpectedContent is wrapped by the error of a body that is not a JSON
// object or an array of objects.
var ErrUnexpectedContent = errors.New("unexpected content")

// parse parses a body: a JSON object, or an array of objects, each object
// being a result whose string and number properties are kept.
func parse(body []byte) ([]map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, contentError(body, "invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, contentError(body, "more than one JSON value")
	}
	switch v := v.(type) {
	case map[string]any:
		return []map[string]string{properties(v)}, nil
	case []any:
		results := make([]map[string]string, len(v))
		for i, e := range v {
			o, ok := e.(map[string]any)
			if !ok {
				return nil, contentError(body, "element %d of the array is %s, not an object", i, kind(e))
			}
			results[i] = properties(o)
		}
		return results, nil
	default:
		return nil, contentError(body, "%s, not an object or an array of objects", kind(v))
	}
}

// properties keeps the string and number properties of a JSON object.
func properties(o map[string]any) map[string]string {
	props := make(map[string]string, len(o))
	for k, v := range o {
		switch v := v.(type) {
		case string:
			props[k] = v
		case json.Number:
			props[k] = v.String() // the text of the JSON, as written
		}
	}
	return props
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}

// excerptLen is how much of a body a content error quotes.
const excerptLen = 64

// contentError is an ErrUnexpectedContent error quoting the start of body.
func contentError(body []byte, format string, args ...any) error {
	excerpt := body
	more := ""
	if len(excerpt) > excerptLen {
		excerpt = excerpt[:excerptLen]
		for len(excerpt) > 0 && !utf8.Valid(excerpt) {
			excerpt = excerpt[:len(excerpt)-1] // cut on a character boundary
		}
		more = "..."
	}
	args = append([]any{ErrUnexpectedContent}, args...)
	args = append(args, excerpt, more)
	return fmt.Errorf("%w: "+format+" (body %q%s)", args...)
}

func statusError(code int) error { return fmt.Errorf("status %d", code) }

// checkRetry is the retry policy: retry connection errors, timeouts, 5xx,
// 408 and 429, nothing else, and nothing once ctx is done.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		if !transient(err) {
			return false, nil
		}
		if c.log.Enabled(ctx, slog.LevelDebug) {
			c.log.DebugContext(ctx, "fetch failed, retrying", "url", requestURL(resp, err), "error", withoutURL(err).Error())
		}
		return true, nil
	}
	if !retryableStatus(resp.StatusCode) {
		return false, nil
	}
	if c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.DebugContext(ctx, "fetch failed, retrying", "url", requestURL(resp, nil), "status", resp.StatusCode)
	}
	return true, nil
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

// jitteredBackoff waits between half and all of min·2ⁿ before retry n,
// capped at max.
func jitteredBackoff(min, max time.Duration, attempt int, _ *http.Response) time.Duration {
	d := max
	if attempt < 32 {
		if e := min << attempt; e > 0 && e < max {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}

// attemptsError is what giveUp passes to Fetch.
type attemptsError struct {
	attempts int
	status   int   // of the last response, 0 without one
	err      error // of the last attempt; nil when its status failed
}

func (e *attemptsError) Error() string { return "giving up" }

// giveUp is the retryablehttp.ErrorHandler: it closes the last response and
// reports what failed to Fetch.
func giveUp(resp *http.Response, err error, attempts int) (*http.Response, error) {
	status := 0
	if resp != nil {
		status = resp.StatusCode
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // to reuse the connection
		resp.Body.Close()
	}
	return nil, &attemptsError{attempts: attempts, status: status, err: err}
}

// failure turns what retryablehttp returned into an *Error.
func failure(ctx context.Context, rawURL string, err error) *Error {
	if ctx.Err() != nil {
		return &Error{URL: rawURL, Err: ctx.Err()}
	}
	ae, ok := err.(*attemptsError)
	if !ok { // not expected: retryablehttp calls giveUp on every failure
		return &Error{URL: rawURL, Err: withoutURL(err)}
	}
	var fe *Error
	switch {
	case errors.As(ae.err, &fe):
		e := *fe
		e.URL = rawURL
		return &e
	case ae.err == nil: // a retryable status, to the last attempt
		return &Error{URL: rawURL, Status: ae.status, Err: fmt.Errorf("%s: %w", attempts(ae.attempts), statusError(ae.status))}
	case transient(ae.err):
		return &Error{URL: rawURL, Err: fmt.Errorf("%s: %w", attempts(ae.attempts), withoutURL(ae.err))}
	default:
		return &Error{URL: rawURL, Permanent: true, Err: withoutURL(ae.err)}
	}
}

func attempts(n int) string {
	if n == 1 {
		return "giving up after 1 attempt"
	}
	return fmt.Sprintf("giving up after %d attempts", n)
}
