// Command healthcheck is the container health check of the images built by
// deploy/Dockerfile, which have no shell and no curl (distroless): it GETs
// a URL and exits 0 when the answer is 2xx, 1 otherwise (any other status,
// no answer within -timeout), printing why on stderr; 2 for bad usage.
//
//	healthcheck [-timeout 2s] [URL]
//
// URL defaults to http://127.0.0.1:9464/readyz, resc-go's readiness on its
// default port: 200 when its Redis answers PING. Redirects are not
// followed (a redirect is not healthy).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// DefaultURL is resc-go's readiness endpoint on its default port.
const DefaultURL = "http://127.0.0.1:9464/readyz"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run checks the URL of args and returns the exit code.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the whole answer")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: healthcheck [-timeout D] [URL]   (default "+DefaultURL+")")
	}
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 || *timeout <= 0 {
		fs.Usage()
		return 2
	}
	url := DefaultURL
	if fs.NArg() == 1 {
		url = fs.Arg(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 2
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(stderr, "healthcheck: %s: %s: %s\n", url, resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	return 0
}
