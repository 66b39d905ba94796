package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"
)

// Server serves a replica's operational endpoints:
//
//	/healthz        200 while the process serves (liveness)
//	/readyz         200 when ready says so, else 503 with the reason
//	/debug/pprof/   Go profiles, for performance work (unless turned off)
//
// and what Handle adds (/metrics, /ui/). /debug/pprof/cmdline is not
// served: a command line may hold a secret (--redis-url with a password),
// and go tool pprof does not need it.
type Server struct {
	ln    net.Listener
	mux   *http.ServeMux
	srv   *http.Server
	log   *slog.Logger
	ready func(context.Context) error

	start sync.Once
	errc  chan error // Serve's error, once started
}

// ServerOptions tune a Server.
type ServerOptions struct {
	// NoPprof leaves /debug/pprof/ out (RESC_PPROF=off).
	NoPprof bool
}

// ListenError is an address ListenWith cannot listen on: the caller, who
// knows which setting gave it, names that setting to the operator.
type ListenError struct {
	Addr string
	Err  error // net.Listen's
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("telemetry: cannot listen on %q: %v", e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// Listen is ListenWith and the default options: profiles served.
func Listen(addr string, ready func(context.Context) error, log *slog.Logger) (*Server, error) {
	return ListenWith(addr, ready, log, ServerOptions{})
}

// ListenWith binds addr (e.g. "127.0.0.1:9464") and returns a Server to
// Run. ready is called by /readyz with a context of one second.
func ListenWith(addr string, ready func(context.Context) error, log *slog.Logger, o ServerOptions) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ListenError{Addr: addr, Err: err}
	}
	mux := http.NewServeMux()
	s := &Server{ln: ln, mux: mux, log: log, ready: ready}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if !o.NoPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", http.NotFound)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

// Handle serves h at pattern (e.g. "GET /metrics"), also once serving.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Start starts serving, if Run has not already: the health endpoints of a
// process still waiting for Redis answer. Run still stops the server.
func (s *Server) Start() {
	s.start.Do(func() {
		s.errc = make(chan error, 1)
		go func() { s.errc <- s.srv.Serve(s.ln) }()
	})
}

// Run serves until ctx is done, then shuts down within five seconds.
func (s *Server) Run(ctx context.Context) error {
	s.Start()
	select {
	case err := <-s.errc:
		return fmt.Errorf("telemetry: http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("telemetry: http shutdown: %w", err)
	}
	return nil
}
