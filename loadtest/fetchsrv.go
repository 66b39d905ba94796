package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// fetchServer is the local HTTP service of the fetch mode: GET /v/<seq>
// answers {"v":"ok"} after a fixed delay, like a service with that latency.
// It runs in the generator's process, so its CPU is shared with the rest
// of the machine's.
type fetchServer struct {
	srv   *http.Server
	url   string
	delay time.Duration
	done  chan error
}

func startFetchServer(delay time.Duration) (*fetchServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loadtest: fetch server: %w", err)
	}
	f := &fetchServer{url: "http://" + l.Addr().String(), delay: delay, done: make(chan error, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v/{seq}", f.serve)
	f.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { f.done <- f.srv.Serve(l) }()
	return f, nil
}

func (f *fetchServer) serve(w http.ResponseWriter, r *http.Request) {
	t := time.NewTimer(f.delay)
	defer t.Stop()
	select {
	case <-t.C: // the service's latency
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"v":"ok"}`))
}

// close stops the server, even when ctx is already done.
func (f *fetchServer) close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	err := f.srv.Shutdown(ctx)
	if serr := <-f.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
