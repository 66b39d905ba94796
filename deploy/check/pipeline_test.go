package check

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/resc-go/resc/internal/otlptest"
	"github.com/resc-go/resc/internal/proctest"
	"github.com/resc-go/resc/internal/redistest"
	"github.com/resc-go/resc/internal/testutil"
)

// TestComposePipeline runs the compose demo without Docker: the programs of
// the images, built from this tree, run as the services of
// docker-compose.yml say (entrypoint, command, environment, the mounted
// configuration), with the service names redis, jaeger and demo-api and
// the listening ports turned into loopback addresses of a redis-server, an
// OTLP receiver and free ports. The health checks of the file gate the
// start as depends_on does. Then: every event the producer pushes is
// handled (tasks of the treatments, their reports, the unknown plant in
// the dead-letter list), one event's trace goes from resc-go through the
// API, the worker, resc-go again and the second worker, and the replicas
// exit 0 on SIGTERM.
func TestComposePipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo's programs")
	}
	p := loadCompose(t, filepath.Join(deployDir, "docker-compose.yml"))
	a := newComposeApp(p, parseDockerfile(t, filepath.Join(deployDir, "Dockerfile")))
	bins := buildPrograms(t)
	srv := redistest.Start(t)
	rdb := srv.Client()
	recv := otlptest.Start(t)
	recvURL, _ := url.Parse(recv.URL)
	api := freeAddr(t)
	// What the service names and ports become here.
	names := []string{"//redis:6379", "//" + srv.Addr(), "//jaeger:4318", "//" + recvURL.Host, "//demo-api:8080", "//" + api}
	hosts := strings.NewReplacer(names...)
	ctx := context.Background()

	run := func(name string, wait bool) *process {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		// The service's own port: where it listens (0.0.0.0:port, :port)
		// and where its health check asks (127.0.0.1:port).
		own := api
		port := "8080"
		if addr := env(s, "RESC_HTTP_ADDR"); addr != "" {
			_, port, _ = net.SplitHostPort(addr)
			own = freeAddr(t)
		}
		local := strings.NewReplacer(append(slices.Clone(names),
			"0.0.0.0:"+port, own, "127.0.0.1:"+port, own, ":"+port, own)...)
		argv := a.argv(s)
		bin, ok := bins[argv[0]]
		if !ok {
			t.Fatalf("%s: runs %s, which no image has", name, argv[0])
		}
		args := make([]string, 0, len(argv)-1)
		for _, w := range argv[1:] {
			args = append(args, local.Replace(mountedCopy(t, s, w, hosts)))
		}
		environ := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "OTEL_BSP_SCHEDULE_DELAY=50"}
		for k, v := range s.Environment {
			if v != nil {
				environ = append(environ, k+"="+local.Replace(*v))
			}
		}
		pr := startProcess(t, name, bin, args, environ)
		if hc := s.HealthCheck; hc != nil && len(hc.Test) >= 2 && hc.Test[0] == "CMD" {
			check := make([]string, 0, len(hc.Test)-2)
			for _, w := range hc.Test[2:] {
				check = append(check, local.Replace(w))
			}
			pr.health = func() ([]byte, error) { return exec.Command(bins[hc.Test[1]], check...).CombinedOutput() }
		}
		if wait {
			waitHealthy(t, pr)
		}
		return pr
	}

	run("demo-api", true)
	var replicas []*process
	for _, name := range a.replicas {
		replicas = append(replicas, run(name, false))
	}
	for _, pr := range replicas {
		waitHealthy(t, pr)
	}
	var workers []*process
	for name, s := range p.Services {
		if argv := a.argv(s); len(argv) > 0 && filepath.Base(argv[0]) == "worker" {
			workers = append(workers, run(name, false))
		}
	}
	producer := run("producer", false)
	if code := producer.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("producer exited %d\n%s", code, producer.out())
	}

	// The events the producer pushed: their treatments from the API.
	argv := a.argv(p.Services["producer"])
	treatments := map[string]int{}
	total, unknown := 0, 0
	for _, ev := range argv[3:] {
		parts := strings.Split(ev, "/")
		n, ok := countTreatments(t, api, parts[1], parts[2])
		if !ok {
			unknown++
			continue
		}
		treatments[ev] = n
		total += n
	}
	if total == 0 || unknown == 0 {
		t.Fatalf("the producer's events %v: %d treatments, %d unknown plants: the demo should show both", argv[3:], total, unknown)
	}

	// Every report done by worker-report; the unknown plant dead-lettered.
	deadline := time.Now().Add(60 * time.Second)
	for {
		reports := countSpans(recv.Spans(), "worker-report", "process report/todo", "")
		dead := rdb.LLen(ctx, "global/done/dead").Val()
		if reports == total && dead == int64(unknown) {
			break
		}
		if time.Now().After(deadline) {
			for _, pr := range append(replicas, workers...) {
				t.Logf("%s:\n%s", pr.name, pr.out())
			}
			t.Fatalf("after 60 s: %d of %d reports done, %d of %d events dead-lettered", reports, total, dead, unknown)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, q := range []string{"global/done", "trt/todo", "report/todo"} {
		if n := rdb.LLen(ctx, q).Val(); n != 0 {
			t.Errorf("%s: %d left", q, n)
		}
	}

	// SIGTERM: each replica drains, hands back, deregisters and exits 0.
	for _, pr := range replicas {
		pr.signal(t, syscall.SIGTERM)
	}
	for _, pr := range workers {
		pr.signal(t, syscall.SIGTERM)
	}
	for _, pr := range append(replicas, workers...) {
		if code := pr.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s: exit code %d after SIGTERM\n%s", pr.name, code, pr.out())
		}
	}
	if n := rdb.SCard(ctx, "resc:replicas").Val(); n != 0 {
		t.Errorf("%d replicas still registered after SIGTERM", n)
	}

	// One trace per acquisition, from resc-go through the API, the worker,
	// resc-go and the second worker (RESC_TRACE_PARENT=child, -child).
	spans := recv.Spans()
	for ev, n := range treatments {
		var root *otlptest.Span
		for i, s := range spans {
			if s.Service == "resc" && s.Name == "process global/done" && s.Attrs["resc.event"] == ev {
				root = &spans[i]
			}
		}
		if root == nil {
			t.Errorf("%s: no span process global/done", ev)
			continue
		}
		var trace []otlptest.Span
		for _, s := range spans {
			if s.TraceID == root.TraceID {
				trace = append(trace, s)
			}
		}
		api := find(trace, "demo-api", "GET /plants/{plant}/products/{product}/treatments")
		get := find(trace, "resc", "HTTP GET")
		if api == nil || get == nil || api.ParentID != get.SpanID {
			t.Errorf("%s: the API's span does not continue resc-go's fetch: %v", ev, spanNames(trace))
		}
		_, plant, product := split3(ev)
		for _, want := range []struct{ service, name, event string }{
			{"worker-trt", "process trt/todo", ""},
			{"resc", "process global/done", "trt/" + plant + "/" + product + "/"},
			{"worker-report", "process report/todo", ""},
		} {
			if got := countSpans(trace, want.service, want.name, want.event); got != n {
				t.Errorf("%s: %d spans %s of %s in its trace, want one per treatment (%d): %v", ev, got, want.name, want.service, n, spanNames(trace))
			}
		}
	}
}

// buildPrograms builds the programs of the images (as deploy/Dockerfile
// does, without -race: the test runs them) and returns their image paths
// -> the binaries built.
func buildPrograms(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	if _, err := proctest.Build(t.Context(), dir, proctest.BuildOptions{Version: "pipeline-test", Trimpath: true, Static: true}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "./examples/worker", "./examples/demo-api", "./deploy/healthcheck")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bins := map[string]string{}
	for _, p := range []string{"resc", "worker", "demo-api", "healthcheck"} {
		bins["/usr/local/bin/"+p] = filepath.Join(dir, p)
	}
	return bins
}

// mountedCopy: when arg is where a bind mount of the service lands, a copy
// of its source with the service names replaced; else arg.
func mountedCopy(t *testing.T, s types.ServiceConfig, arg string, hosts *strings.Replacer) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == arg {
			data, err := os.ReadFile(v.Source)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), filepath.Base(v.Source))
			if err := os.WriteFile(out, []byte(hosts.Replace(string(data))), 0o644); err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	return arg
}

// waitHealthy runs the service's health check (its CMD, with the
// addresses replaced) until it passes, as depends_on: service_healthy
// waits.
func waitHealthy(t *testing.T, pr *process) {
	t.Helper()
	if pr.health == nil {
		t.Fatalf("%s: no health check to wait for", pr.name)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := pr.health()
		if err == nil {
			return
		}
		if pr.exited() || time.Now().After(deadline) {
			t.Fatalf("%s: not healthy: %v %s\n%s", pr.name, err, out, pr.out())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// process is a program of the demo, running.
type process struct {
	name   string
	cmd    *exec.Cmd
	output testutil.Buffer        // stdout and stderr
	done   chan struct{}          // closed when it has exited
	health func() ([]byte, error) // the service's health check, nil for none
}

func (p *process) out() string { return p.output.String() }

func startProcess(t *testing.T, name, bin string, args, env []string) *process {
	t.Helper()
	p := &process{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.output, &p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		t.Errorf("%s: %v", p.name, err)
	}
}

// wait returns the exit code, or fails the test after d.
func (p *process) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("%s: still running after %v\n%s", p.name, d, p.out())
		return -1
	}
}

// freeAddr is a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// countTreatments asks the demo API, as the fetch rule does; ok is false
// for a plant it does not know.
func countTreatments(t *testing.T, api, plant, product string) (int, bool) {
	t.Helper()
	resp, err := http.Get("http://" + api + "/plants/" + plant + "/products/" + product + "/treatments")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, false
	}
	var ts []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&ts); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("demo-api: %s: %v", resp.Status, err)
	}
	return len(ts), true
}

// countSpans counts the spans of service named name, whose resc.event
// starts with event when given.
func countSpans(spans []otlptest.Span, service, name, event string) int {
	n := 0
	for _, s := range spans {
		if s.Service == service && s.Name == name && strings.HasPrefix(s.Attrs["resc.event"], event) {
			n++
		}
	}
	return n
}

func find(spans []otlptest.Span, service, name string) *otlptest.Span {
	for i, s := range spans {
		if s.Service == service && s.Name == name {
			return &spans[i]
		}
	}
	return nil
}

func spanNames(spans []otlptest.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Service+":"+s.Name)
	}
	return out
}

func split3(ev string) (a, b, c string) {
	parts := strings.SplitN(ev, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}
