package check

import (
	"fmt"
	"net"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
)

// The Nomad job is parsed with HCL v2, the parser of Nomad's jobspecs, and
// the parts that matter are decoded into the structs below; every other
// attribute or block lands in a Rest field, unchecked. Expressions are
// evaluated with var.* from the variables' defaults (placeholders for the
// required ones) and the Nomad runtime variables the job may use
// (runtimeVars): a reference to any other, like a misspelt
// ${NOMAD_ALLOC_INDX}, fails the test.

type nomadFile struct {
	Variables []nomadVariable `hcl:"variable,block"`
	Jobs      []struct {
		Name string   `hcl:"name,label"`
		Body hcl.Body `hcl:",remain"`
	} `hcl:"job,block"`
	Rest hcl.Body `hcl:",remain"`
}

type nomadVariable struct {
	Name    string         `hcl:"name,label"`
	Type    hcl.Expression `hcl:"type,optional"`
	Default *cty.Value     `hcl:"default,optional"`
	Rest    hcl.Body       `hcl:",remain"`
}

type nomadJob struct {
	Type   string       `hcl:"type,optional"`
	Update *nomadUpdate `hcl:"update,block"`
	Groups []nomadGroup `hcl:"group,block"`
	Rest   hcl.Body     `hcl:",remain"`
}

type nomadUpdate struct {
	MaxParallel     int      `hcl:"max_parallel,optional"`
	HealthCheck     string   `hcl:"health_check,optional"`
	MinHealthyTime  string   `hcl:"min_healthy_time,optional"`
	HealthyDeadline string   `hcl:"healthy_deadline,optional"`
	AutoRevert      bool     `hcl:"auto_revert,optional"`
	Canary          int      `hcl:"canary,optional"`
	Rest            hcl.Body `hcl:",remain"`
}

type nomadGroup struct {
	Name     string         `hcl:"name,label"`
	Count    *int           `hcl:"count,optional"`
	Update   *nomadUpdate   `hcl:"update,block"`
	Networks []nomadNetwork `hcl:"network,block"`
	Services []nomadService `hcl:"service,block"`
	Tasks    []nomadTask    `hcl:"task,block"`
	Rest     hcl.Body       `hcl:",remain"`
}

type nomadNetwork struct {
	Ports []struct {
		Label string   `hcl:"label,label"`
		To    int      `hcl:"to,optional"`
		Rest  hcl.Body `hcl:",remain"`
	} `hcl:"port,block"`
	Rest hcl.Body `hcl:",remain"`
}

type nomadService struct {
	Name   string `hcl:"name,optional"`
	Port   string `hcl:"port,optional"`
	Checks []struct {
		Type     string   `hcl:"type"`
		Path     string   `hcl:"path,optional"`
		Port     string   `hcl:"port,optional"`
		Interval string   `hcl:"interval,optional"`
		Timeout  string   `hcl:"timeout,optional"`
		Rest     hcl.Body `hcl:",remain"`
	} `hcl:"check,block"`
	Rest hcl.Body `hcl:",remain"`
}

type nomadTask struct {
	Name        string `hcl:"name,label"`
	Driver      string `hcl:"driver"`
	KillTimeout string `hcl:"kill_timeout,optional"`
	KillSignal  string `hcl:"kill_signal,optional"`
	Config      *struct {
		Image string   `hcl:"image,optional"`
		Args  []string `hcl:"args,optional"`
		Ports []string `hcl:"ports,optional"`
		Rest  hcl.Body `hcl:",remain"`
	} `hcl:"config,block"`
	Env *struct {
		Vars hcl.Attributes `hcl:",remain"`
	} `hcl:"env,block"`
	Templates []struct {
		Destination string   `hcl:"destination"`
		Data        string   `hcl:"data,optional"`
		ChangeMode  string   `hcl:"change_mode,optional"`
		Rest        hcl.Body `hcl:",remain"`
	} `hcl:"template,block"`
	Rest hcl.Body `hcl:",remain"`
}

// runtimeVars are the Nomad runtime variables the job may interpolate, with
// values for a docker task. NOMAD_ALLOC_INDEX, NOMAD_ALLOC_NAME and
// NOMAD_ALLOC_ID are set per allocation by nomadEval.
var runtimeVars = map[string]string{
	"NOMAD_JOB_NAME":    "resc",
	"NOMAD_GROUP_NAME":  "resc",
	"NOMAD_TASK_NAME":   "resc",
	"NOMAD_ALLOC_ID":    "5f2b7e3c-0a1d-4d3e-9c1f-7a6b5c4d3e2f",
	"NOMAD_ALLOC_NAME":  "resc.resc[0]",
	"NOMAD_TASK_DIR":    "/local",
	"NOMAD_ALLOC_DIR":   "/alloc",
	"NOMAD_SECRETS_DIR": "/secrets",
	"NOMAD_DC":          "dc1",
	"NOMAD_REGION":      "global",
	"NOMAD_NAMESPACE":   "default",
}

// requiredPlaceholders stand for the variables without a default.
var requiredPlaceholders = map[string]cty.Value{
	"redis_url": cty.StringVal("redis://redis.service.consul:6379/0"),
}

// nomadEval is the evaluation context: var.* and the runtime variables of
// allocation index alloc.
func nomadEval(t *testing.T, vars []nomadVariable, alloc int) *hcl.EvalContext {
	t.Helper()
	values := map[string]cty.Value{}
	for _, v := range vars {
		switch {
		case v.Default != nil:
			values[v.Name] = *v.Default
		case requiredPlaceholders[v.Name] != cty.NilVal:
			values[v.Name] = requiredPlaceholders[v.Name]
		default:
			t.Fatalf("variable %q has no default: add a placeholder to requiredPlaceholders", v.Name)
		}
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(values)}}
	for k, v := range runtimeVars {
		ctx.Variables[k] = cty.StringVal(v)
	}
	ctx.Variables["NOMAD_ALLOC_INDEX"] = cty.StringVal(strconv.Itoa(alloc))
	ctx.Variables["NOMAD_ALLOC_NAME"] = cty.StringVal(fmt.Sprintf("resc.resc[%d]", alloc))
	ctx.Variables["NOMAD_ALLOC_ID"] = cty.StringVal(fmt.Sprintf("5f2b7e3c-0a1d-4d3e-9c1f-%012d", alloc))
	return ctx
}

// loadNomad parses the job file and decodes its only job for allocation
// index alloc.
func loadNomad(t *testing.T, file string, alloc int) (nomadFile, nomadJob) {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCLFile(file)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", file, diags)
	}
	var nf nomadFile
	if diags := gohcl.DecodeBody(f.Body, nil, &nf); diags.HasErrors() {
		t.Fatalf("%s: %v", file, diags)
	}
	if len(nf.Jobs) != 1 {
		t.Fatalf("%s: %d jobs, want 1", file, len(nf.Jobs))
	}
	var job nomadJob
	if diags := gohcl.DecodeBody(nf.Jobs[0].Body, nomadEval(t, nf.Variables, alloc), &job); diags.HasErrors() {
		t.Fatalf("%s: %v", file, diags)
	}
	return nf, job
}

// TestNomad checks deploy/nomad/resc.nomad.hcl (see checkNomad).
func TestNomad(t *testing.T) {
	file := filepath.Join(deployDir, "nomad", "resc.nomad.hcl")
	nf, job := loadNomad(t, file, 0)
	checkNomad(t, file, nf, job)
}

// checkNomad checks the job: the variables redis_url, otlp_endpoint and
// count (default 3) wired into the group and the environment; a service
// job whose group of var.count allocations is updated one at a time, gated
// by its checks, reverted when unhealthy, without canaries; an HTTP check
// on /readyz at the port resc serves on 0.0.0.0; a replica id from the
// allocation index, distinct for every allocation and stable across
// restarts; kill_timeout above the drain timeout plus the hand-back, and
// within Nomad's default max_kill_timeout; `resc run` reading the
// configuration that a template writes, which is valid.
func checkNomad(t *testing.T, file string, nf nomadFile, job nomadJob) {
	defaults := map[string]*cty.Value{}
	for _, v := range nf.Variables {
		defaults[v.Name] = v.Default
	}
	for _, name := range []string{"redis_url", "otlp_endpoint", "count"} {
		if _, ok := defaults[name]; !ok {
			t.Errorf("no variable %q", name)
		}
	}
	if c := defaults["count"]; c == nil || !c.RawEquals(cty.NumberIntVal(3)) {
		t.Errorf("variable count: default %s, want 3", ctyString(c))
	}
	if job.Type != "service" {
		t.Errorf("job type %q, want service", job.Type)
	}
	if len(job.Groups) != 1 {
		t.Fatalf("%d groups, want 1", len(job.Groups))
	}
	g := job.Groups[0]

	// count = var.count.
	if g.Count == nil || *g.Count != 3 {
		t.Errorf("group %s: count is not var.count (3)", g.Name)
	}
	checkNomadRefs(t, nf.Jobs[0].Body, "count", "var.count")

	// Rolling updates: one at a time, gated by the checks, no canary.
	u := g.Update
	if u == nil {
		u = job.Update
	}
	if u == nil {
		t.Fatal("no update block")
	}
	if u.MaxParallel != 1 {
		t.Errorf("update: max_parallel %d, want 1 (a replaced replica hands back before the next stops)", u.MaxParallel)
	}
	if u.HealthCheck != "checks" {
		t.Errorf("update: health_check %q, want checks (/readyz gates the rollout)", u.HealthCheck)
	}
	if !u.AutoRevert {
		t.Error("update: auto_revert is not true")
	}
	if u.Canary != 0 {
		t.Errorf("update: canary %d: a canary runs beside the allocation of its index, under the same replica id, and is refused", u.Canary)
	}
	for name, d := range map[string]string{"min_healthy_time": u.MinHealthyTime, "healthy_deadline": u.HealthyDeadline} {
		if _, err := time.ParseDuration(d); err != nil {
			t.Errorf("update: %s %q: %v", name, d, err)
		}
	}

	if len(g.Tasks) != 1 {
		t.Fatalf("group %s: %d tasks, want 1", g.Name, len(g.Tasks))
	}
	task := g.Tasks[0]
	if task.Env == nil {
		t.Fatal("task: no env block")
	}
	envOf := func(alloc int) map[string]string {
		ctx := nomadEval(t, nf.Variables, alloc)
		out := map[string]string{}
		for name, a := range task.Env.Vars {
			v, diags := a.Expr.Value(ctx)
			if diags.HasErrors() || v.Type() != cty.String {
				t.Errorf("env %s: %v (a string is wanted)", name, diags)
				continue
			}
			out[name] = v.AsString()
		}
		return out
	}
	env := envOf(0)
	checkRescEnv(t, "env", keysOf(env))

	// Wiring: the variables reach the environment.
	checkNomadExpr(t, task.Env.Vars, "RESC_REDIS_URL", "var.redis_url")
	checkNomadExpr(t, task.Env.Vars, "OTEL_EXPORTER_OTLP_ENDPOINT", "var.otlp_endpoint")

	// The replica id: one per allocation index, stable across restarts.
	checkNomadExpr(t, task.Env.Vars, "RESC_REPLICA_ID", "NOMAD_ALLOC_INDEX")
	ids := map[string]int{}
	for alloc := range 3 {
		id := envOf(alloc)["RESC_REPLICA_ID"]
		if err := checkReplicaID(id); err != nil {
			t.Errorf("allocation %d: RESC_REPLICA_ID %q: %v", alloc, id, err)
		}
		if prev, dup := ids[id]; dup {
			t.Errorf("allocations %d and %d get the same replica id %q", prev, alloc, id)
		}
		ids[id] = alloc
	}

	// Health: an HTTP check on /readyz at the port resc listens on.
	host, port, err := net.SplitHostPort(env["RESC_HTTP_ADDR"])
	if err != nil || (host != "0.0.0.0" && host != "") {
		t.Errorf("RESC_HTTP_ADDR=%q: want 0.0.0.0:PORT, for the check to reach it", env["RESC_HTTP_ADDR"])
	}
	portTo := map[string]int{}
	for _, n := range g.Networks {
		for _, p := range n.Ports {
			portTo[p.Label] = p.To
		}
	}
	checked := false
	for _, s := range g.Services {
		for _, c := range s.Checks {
			label := c.Port
			if label == "" {
				label = s.Port
			}
			if c.Type != "http" || c.Path != "/readyz" {
				continue
			}
			checked = true
			if to, ok := portTo[label]; !ok || strconv.Itoa(to) != port {
				t.Errorf("check %s: port %q maps to %d, but resc listens on %s", c.Path, label, to, port)
			}
			if task.Config == nil || !slices.Contains(task.Config.Ports, label) {
				t.Errorf("check %s: the task's config does not publish the port %q", c.Path, label)
			}
			for _, d := range []string{c.Interval, c.Timeout} {
				if _, err := time.ParseDuration(d); err != nil {
					t.Errorf("check %s: %q: %v", c.Path, d, err)
				}
			}
		}
	}
	if !checked {
		t.Error("no service check of type http on /readyz")
	}

	// SIGTERM, drain, hand-back, deregistration, all before SIGKILL.
	drain := defaultDrainTimeout
	if v, ok := env["RESC_DRAIN_TIMEOUT"]; ok {
		if drain, err = time.ParseDuration(v); err != nil {
			t.Errorf("RESC_DRAIN_TIMEOUT=%q: %v", v, err)
		}
	}
	kill := 5 * time.Second // Nomad's default
	if task.KillTimeout != "" {
		if kill, err = time.ParseDuration(task.KillTimeout); err != nil {
			t.Errorf("kill_timeout %q: %v", task.KillTimeout, err)
		}
	}
	if kill < drain+handBackMargin {
		t.Errorf("kill_timeout %v is not above the drain timeout %v plus %v for the hand-back: SIGKILL would cut the shutdown", kill, drain, handBackMargin)
	}
	// Nomad clients cap kill_timeout at max_kill_timeout, 30s by default:
	// a larger value is silently cut on a default client.
	if kill > 30*time.Second {
		t.Errorf("kill_timeout %v is above Nomad's default max_kill_timeout (30s): clients would cut it", kill)
	}
	if s := task.KillSignal; s != "" && s != "SIGTERM" && s != "SIGINT" {
		t.Errorf("kill_signal %s: resc-go drains on SIGTERM or SIGINT", s)
	}

	// The configuration: written by a template, read by `resc run`.
	if task.Config == nil || len(task.Config.Args) != 2 || task.Config.Args[0] != "run" {
		t.Fatalf("task config args %v, want [run CONFIG]", task.Config)
	}
	var cfg *rescConfig
	for _, tpl := range task.Templates {
		// A relative destination is in the task's folder, whose local/ is
		// /local in the container (NOMAD_TASK_DIR).
		if path.Join("/", tpl.Destination) == task.Config.Args[1] {
			cfg = compileRescConfig(t, file+": template "+path.Base(tpl.Destination), []byte(tpl.Data))
		}
	}
	if cfg == nil && !t.Failed() {
		t.Errorf("resc run reads %s, which no template writes", task.Config.Args[1])
	}
	if cfg != nil && cfg.cfg.RedisURL != "" {
		t.Errorf("the template's configuration sets redis.url %q: var.redis_url (RESC_REDIS_URL) should be the only source", cfg.cfg.RedisURL)
	}
}

// checkNomadExpr: the env variable name exists and its expression refers
// to ref (a variable like var.redis_url or a runtime variable).
func checkNomadExpr(t *testing.T, attrs hcl.Attributes, name, ref string) {
	a, ok := attrs[name]
	if !ok {
		t.Errorf("env: no %s", name)
		return
	}
	if !refers(a.Expr, ref) {
		t.Errorf("env %s does not use %s", name, ref)
	}
}

// checkNomadRefs: the attribute name of the job's group refers to ref.
func checkNomadRefs(t *testing.T, jobBody hcl.Body, name, ref string) {
	content, _, _ := jobBody.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "group", LabelNames: []string{"name"}}}})
	for _, b := range content.Blocks {
		attrs, _, _ := b.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}})
		if a, ok := attrs.Attributes[name]; !ok || !refers(a.Expr, ref) {
			t.Errorf("group %s: %s does not use %s", b.Labels[0], name, ref)
		}
	}
}

// refers reports whether expr refers to ref ("var.count", "NOMAD_ALLOC_INDEX").
func refers(expr hcl.Expression, ref string) bool {
	for _, tr := range expr.Variables() {
		var parts []string
		for _, step := range tr {
			switch s := step.(type) {
			case hcl.TraverseRoot:
				parts = append(parts, s.Name)
			case hcl.TraverseAttr:
				parts = append(parts, s.Name)
			}
		}
		if strings.Join(parts, ".") == ref {
			return true
		}
	}
	return false
}

// ctyString shows a variable's default for a message.
func ctyString(v *cty.Value) string {
	if v == nil {
		return "none"
	}
	return v.GoString()
}
