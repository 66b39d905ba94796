package check

import (
	"context"
	"errors"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// handBackMargin is the least time a replica needs after its drain timeout
// to stop taking (up to a second), hand back what is left and deregister:
// a grace period or kill timeout shorter than drain + margin SIGKILLs a
// replica in the middle of its shutdown.
const handBackMargin = 5 * time.Second

// defaultDrainTimeout is resc run's --drain-timeout default.
const defaultDrainTimeout = 30 * time.Second

// loadCompose loads a compose file as `docker compose` would, offline: no
// variable from the process environment (env only), no .env file, no
// remote include (no resource loader).
func loadCompose(t *testing.T, file string, env ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithEnv(env),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return p
}

// TestCompose loads deploy/docker-compose.yml and checks the demo it
// promises (see checkCompose).
func TestCompose(t *testing.T) {
	p := loadCompose(t, filepath.Join(deployDir, "docker-compose.yml"))
	checkCompose(t, p, parseDockerfile(t, filepath.Join(deployDir, "Dockerfile")))

	// The version given to compose reaches the image of every program.
	p = loadCompose(t, filepath.Join(deployDir, "docker-compose.yml"), "RESC_VERSION=v9.8.7")
	for name, s := range p.Services {
		if s.Build != nil && s.Build.Target == "resc" {
			if v := s.Build.Args["VERSION"]; v == nil || *v != "v9.8.7" {
				t.Errorf("%s: RESC_VERSION=v9.8.7 gives the build argument VERSION=%v", name, v)
			}
		}
	}
}

// composeApp is what the checks know of the demo, found in the file.
type composeApp struct {
	p        *types.Project
	d        *dockerfile
	targets  map[string]string // image name -> Dockerfile target that builds it
	replicas []string          // services running `resc run`, by name
}

// newComposeApp finds the images the file builds and the replicas.
func newComposeApp(p *types.Project, d *dockerfile) *composeApp {
	a := &composeApp{p: p, d: d, targets: map[string]string{}}
	for _, s := range p.Services {
		if s.Build != nil {
			a.targets[s.Image] = s.Build.Target
		}
	}
	for name, s := range p.Services {
		if argv := a.argv(s); len(argv) >= 2 && filepath.Base(argv[0]) == "resc" && argv[1] == "run" {
			a.replicas = append(a.replicas, name)
		}
	}
	sort.Strings(a.replicas)
	return a
}

// argv is the command line a service runs: its entrypoint (else that of
// the Dockerfile stage its image is built by) and its command.
func (a *composeApp) argv(s types.ServiceConfig) []string {
	entry := []string(s.Entrypoint)
	if len(entry) == 0 {
		if st := a.stageOf(s); st != nil {
			if ep, ok := st.last("ENTRYPOINT"); ok {
				entry, _ = execForm(ep.args)
			}
		}
	}
	cmd := []string(s.Command)
	if len(cmd) == 0 {
		if st := a.stageOf(s); st != nil {
			if c, ok := st.last("CMD"); ok {
				cmd, _ = execForm(c.args)
			}
		}
	}
	return append(slices.Clone(entry), cmd...)
}

// stageOf is the Dockerfile stage that builds the service's image, by the
// service's own build or another service building the same image.
func (a *composeApp) stageOf(s types.ServiceConfig) *stage {
	if s.Build != nil {
		return a.d.stage(s.Build.Target)
	}
	if target, ok := a.targets[s.Image]; ok {
		return a.d.stage(target)
	}
	return nil
}

// env returns a variable of the service's environment, "" when unset.
func env(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

// flagValue returns the value of -name in argv (-name=v, --name=v, -name v).
func flagValue(argv []string, name string) (string, bool) {
	for i, a := range argv {
		for _, p := range []string{"-" + name, "--" + name} {
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, true
			}
			if a == p {
				if i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
					return argv[i+1], true
				}
				return "true", true
			}
		}
	}
	return "", false
}

// checkCompose checks the demo: Redis with AOF, a volume and a health
// check; Jaeger with its UI published; at least three replicas of one
// configuration (same image, same environment but distinct replica ids,
// the same valid configuration file mounted read-only where `resc run`
// reads it), each wired to Redis and Jaeger, serving health on 0.0.0.0,
// checked on /readyz by a program of its image, started after Redis is
// healthy, given a stop grace period above its drain timeout and restarted
// when it exits; the fetched service of the configuration present, traced
// and health-checked; a worker for every queue the configuration makes,
// reporting done events to an input queue and continuing the traces; a
// producer pushing to an input queue once every replica is healthy.
func checkCompose(t *testing.T, p *types.Project, d *dockerfile) {
	a := newComposeApp(p, d)
	targets := map[string]string{}
	for name, s := range p.Services {
		if s.Image == "" {
			t.Errorf("%s: no image", name)
		} else if _, built := a.targets[s.Image]; !built && s.PullPolicy == types.PullPolicyNever {
			t.Errorf("%s: image %s is never pulled and no service builds it", name, s.Image)
		}
		if s.Build == nil {
			continue
		}
		// Paths are resolved: the context is absolute, the Dockerfile
		// relative to it.
		root, _ := filepath.Abs(repoRoot)
		if s.Build.Context != root || filepath.Join(root, s.Build.Dockerfile) != filepath.Join(root, "deploy", "Dockerfile") {
			t.Errorf("%s: builds %s with the context %s: want deploy/Dockerfile with the repository root as context", name, s.Build.Dockerfile, s.Build.Context)
		}
		if d.stage(s.Build.Target) == nil {
			t.Errorf("%s: build target %q is no stage of the Dockerfile", name, s.Build.Target)
		}
		if prev, ok := targets[s.Image]; ok && prev != s.Build.Target {
			t.Errorf("%s: image %s built from targets %s and %s", name, s.Image, prev, s.Build.Target)
		}
		targets[s.Image] = s.Build.Target
	}

	redisName := checkComposeRedis(t, p)
	jaegerName := checkComposeJaeger(t, p)
	cfg := checkComposeReplicas(t, a, redisName, jaegerName)
	if cfg == nil {
		return
	}
	checkComposeFetched(t, a, cfg, jaegerName)
	checkComposeWorkers(t, a, cfg, redisName, jaegerName)
	checkComposeProducer(t, a, cfg, redisName)
}

// checkComposeRedis returns the name of the Redis service.
func checkComposeRedis(t *testing.T, p *types.Project) string {
	s, ok := p.Services["redis"]
	if !ok {
		t.Error("no service redis")
		return ""
	}
	if !strings.HasPrefix(s.Image, "redis:") {
		t.Errorf("redis: image %s", s.Image)
	}
	argv := []string(s.Command)
	if i := slices.Index(argv, "--appendonly"); i < 0 || i+1 >= len(argv) || argv[i+1] != "yes" {
		t.Errorf("redis: command %q: no --appendonly yes (AOF persistence)", argv)
	}
	if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/data" && v.Source != "" }) {
		t.Error("redis: no volume on /data: the AOF would go with the container")
	}
	hc := s.HealthCheck
	if hc == nil || hc.Disable || !strings.Contains(strings.Join(hc.Test, " "), "redis-cli ping") {
		t.Errorf("redis: want a health check running redis-cli ping, have %+v", hc)
	}
	checkRestarts(t, "redis", s)
	return "redis"
}

// checkComposeJaeger returns the name of the Jaeger service.
func checkComposeJaeger(t *testing.T, p *types.Project) string {
	s, ok := p.Services["jaeger"]
	if !ok {
		t.Error("no service jaeger")
		return ""
	}
	if !strings.Contains(s.Image, "jaegertracing/") {
		t.Errorf("jaeger: image %s", s.Image)
	}
	if !slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == 16686 && pc.Published == "16686" }) {
		t.Errorf("jaeger: the UI (16686) is not published on localhost:16686: %+v", s.Ports)
	}
	return "jaeger"
}

// checkComposeReplicas checks the replicas and returns their (shared)
// configuration, nil when it cannot be had.
func checkComposeReplicas(t *testing.T, a *composeApp, redisName, jaegerName string) *rescConfig {
	if len(a.replicas) < 3 {
		t.Errorf("%d services run `resc run` (%v), want at least 3 replicas", len(a.replicas), a.replicas)
	}
	ids := map[string]string{}
	var first types.ServiceConfig
	var cfg *rescConfig
	published := map[string]string{}
	for i, name := range a.replicas {
		s := a.p.Services[name]
		id := env(s, "RESC_REPLICA_ID")
		if err := checkReplicaID(id); err != nil {
			t.Errorf("%s: RESC_REPLICA_ID %q: %v", name, id, err)
		} else if other, dup := ids[id]; dup {
			t.Errorf("%s and %s share the replica id %q: the second would be refused", other, name, id)
		}
		ids[id] = name

		// One configuration: same image, same environment but the id.
		if i == 0 {
			first = s
		} else {
			if s.Image != first.Image {
				t.Errorf("%s: image %s, %s: %s", name, s.Image, a.replicas[0], first.Image)
			}
			for _, k := range keysOf(s.Environment, first.Environment) {
				if k != "RESC_REPLICA_ID" && env(s, k) != env(first, k) {
					t.Errorf("%s: %s=%q, but %s has %q: the replicas should differ by their id only", name, k, env(s, k), a.replicas[0], env(first, k))
				}
			}
		}

		checkRescEnv(t, name, keysOf(s.Environment))
		checkURLService(t, name, "RESC_REDIS_URL", env(s, "RESC_REDIS_URL"), redisName, "6379")
		checkURLService(t, name, "OTEL_EXPORTER_OTLP_ENDPOINT", env(s, "OTEL_EXPORTER_OTLP_ENDPOINT"), jaegerName, otlpPort(s))

		// Health: served beyond loopback, checked on /readyz.
		host, port, err := net.SplitHostPort(env(s, "RESC_HTTP_ADDR"))
		if err != nil || (host != "0.0.0.0" && host != "" && host != "::") {
			t.Errorf("%s: RESC_HTTP_ADDR=%q: want 0.0.0.0:PORT, reachable by the health check and the published port", name, env(s, "RESC_HTTP_ADDR"))
		}
		checkHealthCheck(t, a, name, s, port, "/readyz")
		for _, pc := range s.Ports {
			if pc.Target != parsePort(port) {
				t.Errorf("%s: publishes container port %d, but serves on %s", name, pc.Target, port)
			}
			if !isLoopback(pc.HostIP) {
				t.Errorf("%s: publishes %s on %q: /debug/pprof/ would be open beyond this machine; bind 127.0.0.1", name, pc.Published, pc.HostIP)
			}
			if other, dup := published[pc.Published]; dup {
				t.Errorf("%s and %s publish the same port %s", other, name, pc.Published)
			}
			published[pc.Published] = name
		}

		if dep, ok := s.DependsOn[redisName]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: depends_on %s: %+v, want condition service_healthy", name, redisName, dep)
		}

		// SIGTERM: drain, then hand back and deregister before SIGKILL.
		drain := defaultDrainTimeout
		if v := env(s, "RESC_DRAIN_TIMEOUT"); v != "" {
			if drain, err = time.ParseDuration(v); err != nil {
				t.Errorf("%s: RESC_DRAIN_TIMEOUT=%q: %v", name, v, err)
			}
		}
		grace := 10 * time.Second // compose's default
		if s.StopGracePeriod != nil {
			grace = time.Duration(*s.StopGracePeriod)
		}
		if grace < drain+handBackMargin {
			t.Errorf("%s: stop_grace_period %v is not above the drain timeout %v plus %v for the hand-back: SIGKILL would cut the shutdown", name, grace, drain, handBackMargin)
		}
		if sig := s.StopSignal; sig != "" && sig != "SIGTERM" && sig != "SIGINT" {
			t.Errorf("%s: stop_signal %s: resc-go drains on SIGTERM or SIGINT", name, sig)
		}
		checkRestarts(t, name, s)

		// The configuration `resc run` reads, mounted from this folder.
		c := checkMountedConfig(t, a, name, s)
		if i == 0 {
			cfg = c
		} else if c != nil && cfg != nil && c.file != cfg.file {
			t.Errorf("%s runs %s, %s runs %s: the replicas should share one configuration", name, c.file, a.replicas[0], cfg.file)
		}
	}
	return cfg
}

// checkMountedConfig checks that the CONFIG of `resc run` is a file of
// this folder mounted read-only, and that it is a valid configuration.
func checkMountedConfig(t *testing.T, a *composeApp, name string, s types.ServiceConfig) *rescConfig {
	argv := a.argv(s)
	var pos []string
	for _, w := range argv[2:] {
		if !strings.HasPrefix(w, "-") {
			pos = append(pos, w)
		}
	}
	if len(pos) != 1 {
		t.Errorf("%s: `%s`: want one CONFIG argument (and flags as -name=value)", name, strings.Join(argv, " "))
		return nil
	}
	for _, v := range s.Volumes {
		if v.Target != pos[0] {
			continue
		}
		if v.Type != types.VolumeTypeBind {
			t.Errorf("%s: %s is a %s volume, want a bind mount of a file of the repository", name, v.Target, v.Type)
			return nil
		}
		if !v.ReadOnly {
			t.Errorf("%s: %s is mounted read-write", name, v.Target)
		}
		return loadRescConfig(t, v.Source)
	}
	t.Errorf("%s: runs %s, but no volume is mounted there", name, pos[0])
	return nil
}

// checkHealthCheck: a health check the image can run without a shell,
// GETting path on the service's own port.
func checkHealthCheck(t *testing.T, a *composeApp, name string, s types.ServiceConfig, port, path string) {
	hc := s.HealthCheck
	if hc == nil || hc.Disable || len(hc.Test) < 2 {
		t.Errorf("%s: no health check", name)
		return
	}
	if hc.Test[0] != "CMD" {
		t.Errorf("%s: health check %q: want [\"CMD\", ...]: the image has no shell", name, hc.Test)
		return
	}
	if st := a.stageOf(s); st == nil || !copiedTo(st)[hc.Test[1]] {
		t.Errorf("%s: health check runs %s, which its image does not have", name, hc.Test[1])
	}
	want := "http://127.0.0.1:" + port + path
	if !slices.Contains(hc.Test[2:], want) {
		t.Errorf("%s: health check %q does not GET %s", name, hc.Test, want)
	}
}

// checkComposeFetched: each host a fetch rule of the configuration asks is
// a service of the file, listening on the URL's port, traced to Jaeger and
// health-checked, that the replicas wait for.
func checkComposeFetched(t *testing.T, a *composeApp, cfg *rescConfig, jaegerName string) {
	if len(cfg.fetchURLs) == 0 {
		t.Error("the configuration has no fetch rule: the demo shows no resc -> API trace")
	}
	for _, raw := range cfg.fetchURLs {
		u, err := url.Parse(strings.NewReplacer("${", "", "}", "").Replace(raw))
		if err != nil {
			t.Errorf("fetch url %s: %v", raw, err)
			continue
		}
		name := u.Hostname()
		s, ok := a.p.Services[name]
		if !ok {
			t.Errorf("fetch url %s: no service %s", raw, name)
			continue
		}
		port := u.Port()
		if port == "" {
			port = "80"
		}
		if addr, _ := flagValue(a.argv(s), "addr"); addr != ":"+port && addr != "0.0.0.0:"+port {
			t.Errorf("%s: listens on -addr %q, the configuration fetches port %s", name, addr, port)
		}
		checkURLService(t, name, "OTEL_EXPORTER_OTLP_ENDPOINT", env(s, "OTEL_EXPORTER_OTLP_ENDPOINT"), jaegerName, otlpPort(s))
		checkHealthCheck(t, a, name, s, port, "/healthz")
		checkRestarts(t, name, s)
		for _, r := range a.replicas {
			if dep, ok := a.p.Services[r].DependsOn[name]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: does not wait for %s to be healthy (depends_on): its first fetches would fail", r, name)
			}
		}
	}
}

// checkComposeWorkers: every queue the configuration makes has a worker
// (examples/worker) taking from it, on the same Redis, cleaning the set the
// configuration dedups with, sending done events to an input queue, and
// continuing the traces as the replicas do (child or link).
func checkComposeWorkers(t *testing.T, a *composeApp, cfg *rescConfig, redisName, jaegerName string) {
	child := env(a.p.Services[a.replicas[0]], "RESC_TRACE_PARENT") == "child"
	served := map[string]bool{}
	for name, s := range a.p.Services {
		argv := a.argv(s)
		if len(argv) == 0 || filepath.Base(argv[0]) != "worker" {
			continue
		}
		queue, _ := flagValue(argv, "queue")
		served[queue] = true
		set, ok := cfg.queues[queue]
		if !ok {
			t.Errorf("%s: takes from %q, a queue the configuration makes no task in (it makes %v)", name, queue, keysOf(cfg.queues))
		}
		if got, _ := flagValue(argv, "set"); got != set {
			t.Errorf("%s: -set %q, but the configuration dedups %s with the set %q", name, got, queue, set)
		}
		if done, ok := flagValue(argv, "done"); ok && !slices.Contains(cfg.inputQueues, done) {
			t.Errorf("%s: -done %q is no input queue of the configuration (%v)", name, done, cfg.inputQueues)
		}
		u, _ := flagValue(argv, "redis-url")
		checkURLService(t, name, "-redis-url", u, redisName, "6379")
		checkURLService(t, name, "OTEL_EXPORTER_OTLP_ENDPOINT", env(s, "OTEL_EXPORTER_OTLP_ENDPOINT"), jaegerName, otlpPort(s))
		if _, got := flagValue(argv, "child"); got != child {
			t.Errorf("%s: -child is %v but the replicas' RESC_TRACE_PARENT child is %v: the trace would break at the worker", name, got, child)
		}
		if dep, ok := s.DependsOn[redisName]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: depends_on %s: %+v, want condition service_healthy", name, redisName, dep)
		}
		checkRestarts(t, name, s)
	}
	for q := range cfg.queues {
		if !served[q] {
			t.Errorf("no worker takes the tasks of %s: they would pile up", q)
		}
	}
}

// checkComposeProducer: a one-shot `resc push` to an input queue, once every
// replica is healthy.
func checkComposeProducer(t *testing.T, a *composeApp, cfg *rescConfig, redisName string) {
	s, ok := a.p.Services["producer"]
	if !ok {
		t.Error("no service producer")
		return
	}
	argv := a.argv(s)
	if len(argv) < 4 || filepath.Base(argv[0]) != "resc" || argv[1] != "push" {
		t.Errorf("producer: runs %q, want resc push QUEUE EVENT...", argv)
		return
	}
	if !slices.Contains(cfg.inputQueues, argv[2]) {
		t.Errorf("producer: pushes to %q, no input queue of the configuration (%v)", argv[2], cfg.inputQueues)
	}
	checkURLService(t, "producer", "RESC_REDIS_URL", env(s, "RESC_REDIS_URL"), redisName, "6379")
	for _, r := range a.replicas {
		if dep, ok := s.DependsOn[r]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("producer: does not wait for %s to be healthy", r)
		}
	}
	if s.Restart != "" && s.Restart != types.RestartPolicyNo {
		t.Errorf("producer: restart %s: it would push its events again and again", s.Restart)
	}
}

// checkURLService: raw is a URL to service on port.
func checkURLService(t *testing.T, who, what, raw, service, port string) {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() != service || u.Port() != port {
		t.Errorf("%s: %s=%q: want a URL to the service %q on port %s", who, what, raw, service, port)
	}
}

// otlpPort is the OTLP port for the service's protocol (http/protobuf by
// default).
func otlpPort(s types.ServiceConfig) string {
	if env(s, "OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc" {
		return "4317"
	}
	return "4318"
}

// checkRestarts: a long-running service is restarted when it exits.
func checkRestarts(t *testing.T, name string, s types.ServiceConfig) {
	if s.Restart == "" || s.Restart == types.RestartPolicyNo {
		t.Errorf("%s: restart %q: want unless-stopped, always or on-failure", name, s.Restart)
	}
}

// rescVariables are the variables `resc run` reads (README, Environment).
var rescVariables = []string{"RESC_LOG", "RESC_REPLICA_ID", "RESC_REDIS_URL", "RESC_HTTP_ADDR",
	"RESC_EMBEDDED", "RESC_DRAIN_TIMEOUT", "RESC_TRACE_PARENT"}

// checkRescEnv: no RESC_ variable that resc-go does not read (a misspelt
// one is silently ignored).
func checkRescEnv(t *testing.T, who string, names []string) {
	for _, n := range names {
		if strings.HasPrefix(n, "RESC_") && !slices.Contains(rescVariables, n) {
			t.Errorf("%s: %s is no variable of resc-go (%v)", who, n, rescVariables)
		}
	}
}

// checkReplicaID applies resc run's rules for --replica-id.
func checkReplicaID(id string) error {
	switch {
	case id == "":
		return errors.New("empty: each replica would get a random id, and none would replay its own taken list")
	case len(id) > 200:
		return errors.New("longer than 200 bytes")
	case strings.ContainsAny(id, "/ \t\r\n"):
		return errors.New("contains / or whitespace")
	}
	return nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parsePort(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 16)
	return uint32(n)
}

// keysOf returns the keys of the maps, sorted, once each.
func keysOf[V any](ms ...map[string]V) []string {
	var keys []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}
