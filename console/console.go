// Package console is the operators' web console, served at /ui by a
// replica started with --ui and by `resc ui`: the replicas and the leader,
// the queues of every watcher with their rates over the last minutes, the
// dead letters with search, requeue and drop. See docs/ui.md.
//
// It reads through package inspect, like `resc status` and `resc dead`,
// and changes nothing but the dead-letter lists, with inspect's atomic
// operations. Pages are rendered on the server from embedded templates; a
// small embedded script refreshes the overview. Without a token the
// console is read-only; with one, an operator who gives it gets a session
// cookie, and every change is a POST carrying the session's CSRF token
// from the console's own origin.
package console

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/resc-go/resc/config"
	"github.com/resc-go/resc/inspect"
)

// Options tune a Console; the zero value is a read-only console.
type Options struct {
	// Token, when not empty, is what an operator gives at /ui/login to be
	// allowed to requeue and drop; empty: read-only.
	Token string
	// JaegerURL, when set (e.g. "http://127.0.0.1:16686"), makes the trace
	// id of a dead letter a link to <JaegerURL>/trace/<id>.
	JaegerURL string
	// Interval is how often the deployment is read for the overview and
	// its charts; default 5 s. History is how many readings the charts
	// show; default 120 (ten minutes at 5 s).
	Interval time.Duration
	History  int
	// Version is shown in the header.
	Version string
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock of sessions and readings; default time.Now.
	Now func() time.Time
}

// Path is where the console is served.
const Path = "/ui/"

// pageSize is how many dead letters a page lists.
const pageSize = 50

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console serves the console. Create it with New; Run keeps its readings.
type Console struct {
	in     *inspect.Inspector
	cfg    *config.Config
	o      Options
	auth   auth
	logins *logins // failed logins, limited
	log    *slog.Logger
	hist   history
	pages  map[string]*template.Template
	mux    *http.ServeMux
}

// New returns the console of the deployment of cfg that in reads.
func New(in *inspect.Inspector, cfg *config.Config, o Options) (*Console, error) {
	if in == nil || cfg == nil {
		return nil, errors.New("console: an Inspector and its configuration are required")
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	o.History = cmp.Or(o.History, 120)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.JaegerURL = strings.TrimRight(o.JaegerURL, "/")
	c := &Console{in: in, cfg: cfg, o: o, auth: auth{token: []byte(o.Token)}, logins: newLogins(o.Now()), log: o.Logger, hist: history{max: o.History}}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

// parsePages parses each page with the layout and the shared parts.
func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range []string{"overview", "dead", "entry", "confirm", "login", "message"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	m.HandleFunc("GET /ui/{$}", c.overview)
	m.HandleFunc("GET /ui/dead", c.dead)
	m.HandleFunc("GET /ui/dead/entry", c.entry)
	m.HandleFunc("POST /ui/dead/action", c.action)
	m.HandleFunc("GET /ui/login", c.loginForm)
	m.HandleFunc("POST /ui/login", c.login)
	m.HandleFunc("POST /ui/logout", c.logout)
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		c.message(w, r, http.StatusNotFound, "Not found", "There is no such page in the console.")
	})
	c.mux = m
}

// ServeHTTP serves the paths under Path (and redirects /ui to it), with
// headers that keep the pages out of frames and other origins' scripts.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if r.URL.Path == "/ui" {
		http.Redirect(w, r, Path, http.StatusMovedPermanently)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// Register serves the console on mux at Path.
func (c *Console) Register(mux interface {
	Handle(pattern string, h http.Handler)
}) {
	mux.Handle("/ui/", c)
	mux.Handle("/ui", c)
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}

// Run reads the deployment every Interval until ctx is done, so that the
// charts have a history. Without Run, a page reads it when it is shown.
func (c *Console) Run(ctx context.Context) error {
	t := time.NewTicker(c.o.Interval)
	defer t.Stop()
	for {
		c.read(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// read takes one reading and keeps it.
func (c *Console) read(ctx context.Context) sample {
	ctx, cancel := context.WithTimeout(ctx, max(c.o.Interval, 5*time.Second))
	defer cancel()
	s := sample{at: c.o.Now()}
	s.status, s.err = c.in.Status(ctx)
	if s.err == nil {
		s.activity, s.err = c.in.Activity(ctx)
		if s.err != nil {
			s.status = nil
		}
	}
	if s.err != nil && ctx.Err() == nil {
		c.log.Debug("console: reading the deployment", "err", s.err)
	}
	c.hist.add(s)
	return s
}

// latest returns the readings, taking a new one when the latest is older
// than two intervals (Run is not running, or Redis is slow).
func (c *Console) latest(ctx context.Context) []sample {
	samples := c.hist.snapshot()
	if n := len(samples); n == 0 || c.o.Now().Sub(samples[n-1].at) > 2*c.o.Interval {
		c.read(ctx)
		samples = c.hist.snapshot()
	}
	return samples
}
