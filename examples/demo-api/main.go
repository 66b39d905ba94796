// Command demo-api is the small JSON service that the fetch rule of the
// deployment demo (deploy/resc.hjson) asks which treatments a product
// needs. Its server spans continue the traceparent that resc-go's fetch
// sends, so that a trace in Jaeger goes from resc-go into the API.
//
//	GET /plants/{plant}/products/{product}/treatments
//	    200 [{"kind":"wash","minutes":4},{"kind":"dry","minutes":17}]
//	    404 {"error":"unknown plant \"plantZ\""} for a plant other than
//	        plantA, plantB and plantC (the event is dead-lettered: a 404
//	        is a permanent fetch failure)
//	GET /healthz
//	    200 ok (not traced)
//
// The treatments of a product are always the same: one to three of wash,
// dry, grind and weigh, chosen from a hash of the plant and product. Each
// answer waits -delay, so that the span has a visible length. Traces follow
// the OTEL_* variables, as resc-go's do. Usage:
//
//	demo-api -addr :8080 -delay 15ms
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/resc-go/resc/telemetry"
)

// plants are the plants the API knows.
var plants = map[string]bool{"plantA": true, "plantB": true, "plantC": true}

// kinds are the treatments a product may need, in the order they are done.
var kinds = []string{"wash", "dry", "grind", "weigh"}

// treatment is one element of the answer.
type treatment struct {
	Kind    string `json:"kind"`
	Minutes int    `json:"minutes"`
}

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	delay := flag.Duration("delay", 15*time.Millisecond, "how long each answer takes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.Default()
	tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "demo-api"}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-api:", err)
		os.Exit(2)
	}
	defer func() { _ = tel.Shutdown(context.WithoutCancel(ctx)) }()
	srv := &http.Server{Addr: *addr, Handler: newHandler(tel.TracerProvider(), *delay), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("listening", "addr", *addr)
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "demo-api:", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("shutdown", "err", err)
	}
}

// newHandler serves the API, each request but /healthz under a server span
// of tp that continues the request's W3C traceparent, named after the route
// ("GET /plants/{plant}/products/{product}/treatments").
func newHandler(tp trace.TracerProvider, delay time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /plants/{plant}/products/{product}/treatments", func(w http.ResponseWriter, r *http.Request) {
		plant, product := r.PathValue("plant"), r.PathValue("product")
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		if !plants[plant] {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("unknown plant %q", plant)})
			return
		}
		writeJSON(w, http.StatusOK, treatments(plant, product))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	return otelhttp.NewHandler(mux, "demo-api",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		// The health checks of compose would fill Jaeger with spans.
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/healthz" }),
	)
}

// treatments are the treatments of a product: always the same for the same
// plant and product.
func treatments(plant, product string) []treatment {
	h := fnv.New32a()
	h.Write([]byte(plant + "/" + product))
	sum := h.Sum32()
	var ts []treatment
	for i, k := range kinds {
		if sum>>i&1 == 1 {
			ts = append(ts, treatment{Kind: k, Minutes: 1 + int(sum>>(8+4*i)&15)})
		}
		if len(ts) == 3 {
			break
		}
	}
	if len(ts) == 0 {
		ts = append(ts, treatment{Kind: kinds[sum%uint32(len(kinds))], Minutes: 1 + int(sum>>8&15)})
	}
	return ts
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
