// Package fetch GETs the JSON that fetch rules enrich their tasks with.
//
// A fetch is one HTTP GET, retried on transient failures (connection errors,
// timeouts, 5xx, 408 and 429) with a jittered exponential backoff, through
// github.com/hashicorp/go-retryablehttp; a Retry-After header is honoured,
// capped at the longest backoff. The retried call runs inside the circuit
// breaker of its host (github.com/sony/gobreaker/v2): after a number of
// fetches to a host failing in a row, fetches to it fail at once for a
// while, without a request, then a probe decides whether it answers again.
// The response body, read through a size limit, must be a JSON object or an
// array of objects; each object is one result, whose string and number
// properties are its variables (numbers written exactly as the JSON wrote
// them) and whose other properties are ignored.
//
// Each fetch may carry its own settings (a fetcher's config.FetchSettings):
// its timeout, retries, backoff, body limit and breaker settings apply to it
// alone; fetchers with the same breaker settings share the breaker of a
// host.
//
// Failures are *Error values, telling permanent failures (the event should
// go to the dead-letter list) from transient ones that outlived the retries
// or met an open breaker (the event may be tried again later).
package fetch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/internal/jsonkind"
)

// userAgent is sent with every request.
const userAgent = "resc-go"

// maxIdleConnsPerHost is how many idle connections to one host are kept for
// reuse. Fetch rules GET many URLs of the same few hosts at once: Go's
// default of 2 would close most connections after each request and open new
// ones under load. It does not limit how many connections are open at once,
// which the watchers' fetch_concurrency does.
const maxIdleConnsPerHost = 1024

// Client fetches URLs. It is safe for concurrent use.
//
// It keeps, for its whole life, one policy per distinct settings given to
// Fetch and one breaker per host and breaker settings fetched: a URL pattern
// with a variable in its host makes one breaker per host it ever names.
type Client struct {
	transport http.RoundTripper // shared by every fetch, so are its connections
	base      *policy           // the settings given to New
	log       *slog.Logger

	mu       sync.RWMutex
	policies map[config.FetchSettings]*policy // by the settings as given
	breakers map[breakerKey]*breaker

	meter   metric.Meter   // nil without Options.MeterProvider
	metrics *clientMetrics // nil without a meter
}

// policy is a set of fetch settings, with the defaults applied, and the
// HTTP client of its timeout.
type policy struct {
	s    config.FetchSettings
	http *http.Client
}

// Options configure a Client.
type Options struct {
	// Settings are the settings of the fetches that bring none; a zero
	// field takes config's default, but for Retries and BreakerFailures
	// whose zero means no retry and no breaker (see config.FetchSettings).
	Settings config.FetchSettings
	// Logger receives breaker state changes at warn level (a breaker that
	// opens or closes) and info level (half-open), retries at debug level;
	// nil logs nothing.
	Logger *slog.Logger
	// TracerProvider traces every HTTP request as a client span in the
	// trace of the ctx given to Fetch, and sends the W3C traceparent header
	// to the fetched service; nil traces nothing.
	TracerProvider trace.TracerProvider
	// MeterProvider records the client's metrics (docs/telemetry.md):
	// resc.fetch.duration (per host and outcome, retries included),
	// resc.fetch.retries (per host) and resc.fetch.breaker.state (per
	// host); nil records none.
	MeterProvider metric.MeterProvider
}

// New returns a client configured by o.
func New(o Options) *Client {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 0 // no limit over all hosts
	transport.MaxIdleConnsPerHost = maxIdleConnsPerHost
	c := &Client{
		transport: keepIdle{transport},
		log:       log,
		policies:  map[config.FetchSettings]*policy{},
		breakers:  map[breakerKey]*breaker{},
	}
	if o.TracerProvider != nil {
		c.traced(o.TracerProvider)
	}
	if o.MeterProvider != nil {
		c.meter = o.MeterProvider.Meter("github.com/resc-go/resc/fetch")
	}
	if err := c.initMetrics(); err != nil {
		log.Warn("fetch metrics", "err", err)
	}
	c.base = c.newPolicy(o.Settings)
	return c
}

// keepIdle hides the CloseIdleConnections method of the transport from
// http.Client: retryablehttp closes its client's idle connections after
// every fetch that fails, a 404 included, which on a shared transport would
// close the connections of every host and make the next fetches dial again.
// Idle connections are closed by the transport's IdleConnTimeout instead.
type keepIdle struct{ http.RoundTripper }

func (c *Client) newPolicy(s config.FetchSettings) *policy {
	s = withDefaults(s)
	return &policy{s: s, http: &http.Client{Transport: c.transport, Timeout: s.Timeout}}
}

// withDefaults fills in the zero fields of s that have a default, and makes
// the others sensible: no negative count, a BackoffMax at least BackoffMin.
func withDefaults(s config.FetchSettings) config.FetchSettings {
	d := config.DefaultFetchSettings()
	if s.Timeout <= 0 {
		s.Timeout = d.Timeout
	}
	if s.MaxBody <= 0 {
		s.MaxBody = d.MaxBody
	}
	if s.BackoffMin <= 0 {
		s.BackoffMin = d.BackoffMin
	}
	if s.BackoffMax <= 0 {
		s.BackoffMax = d.BackoffMax
	}
	s.BackoffMax = max(s.BackoffMax, s.BackoffMin)
	if s.BreakerOpen <= 0 {
		s.BreakerOpen = d.BreakerOpen
	}
	if s.BreakerHalfOpen <= 0 {
		s.BreakerHalfOpen = d.BreakerHalfOpen
	}
	s.Retries = max(s.Retries, 0)
	s.BreakerFailures = max(s.BreakerFailures, 0)
	return s
}

// policy returns the policy of settings s, nil for the client's own.
func (c *Client) policy(s *config.FetchSettings) *policy {
	if s == nil {
		return c.base
	}
	c.mu.RLock()
	p := c.policies[*s]
	c.mu.RUnlock()
	if p != nil {
		return p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p = c.policies[*s]; p == nil {
		p = c.newPolicy(*s)
		c.policies[*s] = p
	}
	return p
}

// Fetch GETs rawURL and returns its results: one map per JSON object of the
// body, from property name to value. s are the settings of this fetch (nil:
// the client's own), not modified.
//
// Transient failures are retried as the settings say, waiting between
// attempts; once ctx is done, or the host's breaker has opened, nothing is
// retried. ctx bounds the whole fetch, retries and waits included; when it
// is done the error wraps ctx.Err() and the breaker does not count the
// fetch. While the host's breaker is open, Fetch fails at once, without a
// request, with a transient error wrapping ErrCircuitOpen. Every error is
// an *Error.
func (c *Client) Fetch(ctx context.Context, rawURL string, s *config.FetchSettings) (results []map[string]string, err error) {
	p := c.policy(s)
	req, rerr := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if rerr != nil {
		return nil, &Error{URL: rawURL, Permanent: true, Err: withoutURL(rerr)}
	}
	switch {
	case req.URL.Scheme != "http" && req.URL.Scheme != "https":
		return nil, &Error{URL: rawURL, Permanent: true, Err: fmt.Errorf("unsupported protocol scheme %q: want http or https", req.URL.Scheme)}
	case req.URL.Host == "":
		return nil, &Error{URL: rawURL, Permanent: true, Err: errors.New("no host in the URL")}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)

	f := &call{c: c, p: p, url: rawURL}
	if c.metrics != nil {
		start := time.Now()
		defer func() { c.record(ctx, hostKey(req.URL), start, f.attempts, err) }()
	}
	if p.s.BreakerFailures == 0 {
		return f.do(req)
	}
	f.b = c.breaker(req.URL, &p.s)
	results, err = f.b.cb.Execute(func() ([]map[string]string, error) { return f.do(req) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return nil, &Error{URL: rawURL, Err: f.b.refused(err)}
	}
	return results, err
}

// call is one Fetch.
type call struct {
	c   *Client
	p   *policy
	b   *breaker // nil without a breaker
	url string

	attempts int   // HTTP requests made so far
	last     error // the failure of the last attempt retried; nil for a status
	results  []map[string]string
}

// do makes the retried request. Its error is nil or an *Error.
func (f *call) do(req *retryablehttp.Request) ([]map[string]string, error) {
	rc := &retryablehttp.Client{
		HTTPClient:   f.p.http,
		Logger:       nil, // retries are logged by checkRetry, with URLs redacted
		RetryWaitMin: f.p.s.BackoffMin,
		RetryWaitMax: f.p.s.BackoffMax,
		RetryMax:     f.p.s.Retries,
		CheckRetry:   f.checkRetry,
		Backoff:      backoff,
		ErrorHandler: giveUp,
		PrepareRetry: f.prepareRetry,
	}
	req.SetResponseHandler(f.handle)
	f.attempts = 1
	resp, err := rc.Do(req)
	if err != nil {
		return nil, f.failure(req.Context(), err)
	}
	resp.Body.Close()
	return f.results, nil
}

// handle is called by retryablehttp on a response that checkRetry did not
// retry: with a retryable status, only when ctx is done or the breaker is
// open. An error it returns goes through checkRetry: read errors may be
// retried.
func (f *call) handle(resp *http.Response) error {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		permanent := !retryableStatus(resp.StatusCode)
		return &Error{Status: resp.StatusCode, Permanent: permanent, Err: statusError(resp.StatusCode)}
	}
	var err error
	f.results, err = read(resp, f.p.s.MaxBody)
	return err
}

// read reads and parses the body of a 2xx response, at most maxBody bytes.
// A failure to read is returned as is, for checkRetry to classify; the
// others are permanent.
func read(resp *http.Response, maxBody int64) ([]map[string]string, error) {
	if resp.ContentLength > maxBody {
		return nil, &Error{Permanent: true, Err: fmt.Errorf("response body of %d bytes exceeds the limit of %d bytes", resp.ContentLength, maxBody)}
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBody+1)); err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	if int64(buf.Len()) > maxBody {
		return nil, &Error{Permanent: true, Err: fmt.Errorf("response body exceeds the limit of %d bytes", maxBody)}
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
				return nil, contentError(body, "element %d of the array is %s, not an object", i, jsonkind.Of(e))
			}
			results[i] = properties(o)
		}
		return results, nil
	default:
		return nil, contentError(body, "%s, not an object or an array of objects", jsonkind.Of(v))
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
