package check

import (
	"bufio"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The Dockerfile is read as text: the checks need the stages and a handful
// of instructions, which a line reader with continuations gives. BuildKit's
// parser (github.com/moby/buildkit) would bring a large module graph into
// go.mod for that.

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int    // where it starts
	cmd  string // upper case: FROM, RUN...
	args string // the rest, as written
}

// stage is a build stage: FROM base [AS name] and its instructions.
type stage struct {
	name   string // lower case; "" when unnamed
	base   string // the FROM image or stage
	parent *stage // the stage base names, nil for an image
	instrs []instruction
}

// env is the stage's ENV, with those of the stages it is built on.
func (s *stage) env() map[string]string {
	env := map[string]string{}
	if s.parent != nil {
		env = s.parent.env()
	}
	for _, in := range s.instrs {
		if in.cmd == "ENV" {
			for k, v := range parseEnv(in.args) {
				env[k] = v
			}
		}
	}
	return env
}

// all returns the instructions cmd of the stage, in order.
func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// last returns the last instruction cmd of the stage, the one in force.
func (s *stage) last(cmd string) (instruction, bool) {
	all := s.all(cmd)
	if len(all) == 0 {
		return instruction{}, false
	}
	return all[len(all)-1], true
}

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	stages []*stage
}

func (d *dockerfile) stage(name string) *stage {
	for _, s := range d.stages {
		if s.name == strings.ToLower(name) {
			return s
		}
	}
	return nil
}

// parseDockerfile reads the instructions of path: comment lines (# at the
// start, parser directives included) are skipped, also inside a
// continuation; a line ending with a backslash continues on the next one.
func parseDockerfile(t *testing.T, file string) *dockerfile {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var instrs []instruction
	var cur *instruction
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		more := strings.HasSuffix(line, `\`)
		line = strings.TrimSuffix(line, `\`)
		if cur == nil {
			cmd, args, _ := strings.Cut(line, " ")
			instrs = append(instrs, instruction{line: n, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
			cur = &instrs[len(instrs)-1]
		} else {
			cur.args += " " + strings.TrimSpace(line)
		}
		if !more {
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	d := &dockerfile{}
	for _, in := range instrs {
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			s := &stage{base: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				s.name = strings.ToLower(fields[2])
			} else if len(fields) != 1 {
				t.Fatalf("%s:%d: FROM %s: want FROM image [AS name]", file, in.line, in.args)
			}
			s.parent = d.stage(s.base)
			d.stages = append(d.stages, s)
			continue
		}
		if len(d.stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s:%d: %s before the first FROM", file, in.line, in.cmd)
			}
			continue
		}
		s := d.stages[len(d.stages)-1]
		s.instrs = append(s.instrs, in)
	}
	if len(d.stages) == 0 {
		t.Fatalf("%s: no FROM", file)
	}
	return d
}

// parseEnv reads ENV k=v k2="v 2" (or the legacy ENV k v).
func parseEnv(args string) map[string]string {
	env := map[string]string{}
	if k, v, ok := strings.Cut(args, " "); ok && !strings.Contains(k, "=") {
		env[k] = strings.TrimSpace(v)
		return env
	}
	for _, kv := range splitWords(args) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// splitWords splits on blanks outside double quotes, dropping the quotes.
func splitWords(s string) []string {
	var words []string
	var w strings.Builder
	quoted, in := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// execForm parses the JSON (exec) form of ENTRYPOINT, CMD and HEALTHCHECK
// CMD; ok is false for the shell form.
func execForm(args string) ([]string, bool) {
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil || len(argv) == 0 {
		return nil, false
	}
	return argv, true
}

// copiedTo returns the paths that the COPY instructions of s create, for
// "COPY [--from=x] src... dst/" (dst a folder) and "COPY src dst".
func copiedTo(s *stage) map[string]bool {
	out := map[string]bool{}
	for _, in := range s.all("COPY") {
		var paths []string
		for _, w := range strings.Fields(in.args) {
			if !strings.HasPrefix(w, "--") {
				paths = append(paths, w)
			}
		}
		if len(paths) < 2 {
			continue
		}
		dst := paths[len(paths)-1]
		for _, src := range paths[:len(paths)-1] {
			if strings.HasSuffix(dst, "/") {
				out[path.Join(dst, path.Base(src))] = true
			} else {
				out[dst] = true
			}
		}
	}
	return out
}

// goModMinor is the go directive of go.mod, as major.minor ("1.26").
func goModMinor(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod: no go directive")
	}
	return string(m[1])
}

// goBuild is a `go build` command of a RUN instruction.
type goBuild struct {
	stage   *stage
	in      instruction
	command string // the command, from "go build" to the next && or ;
	inline  string // the variable assignments before it (CGO_ENABLED=0 go build)
	pkg     string // the last word: ./cmd/resc
}

// goBuildRE finds "[VAR=value ...] go build ..." up to the next ;, && or |.
var goBuildRE = regexp.MustCompile(`((?:[A-Z_]+=\S*\s+)*)(go build\b[^;&|]*)`)

// goBuilds returns the go build commands of the RUN instructions of s.
func goBuilds(s *stage) []goBuild {
	var out []goBuild
	for _, in := range s.all("RUN") {
		for _, m := range goBuildRE.FindAllStringSubmatch(in.args, -1) {
			words := strings.Fields(m[2])
			out = append(out, goBuild{stage: s, in: in, command: m[2], inline: m[1], pkg: words[len(words)-1]})
		}
	}
	return out
}

// TestDockerfile checks deploy/Dockerfile: a Go build stage of go.mod's Go;
// every go build static (CGO_ENABLED=0) and -trimpath; resc stamped with
// -X main.version=${VERSION} from ARG VERSION; the final stage "resc" on a
// static base (distroless static or scratch) with a numeric non-root USER
// and ENTRYPOINT the resc binary it copies; a "demo" stage with the worker,
// the demo API and the health check, non-root too; COPY --from naming
// earlier stages.
func TestDockerfile(t *testing.T) {
	d := parseDockerfile(t, filepath.Join(deployDir, "Dockerfile"))
	checkDockerfile(t, d, goModMinor(t))
	// -X main.version needs the variable it sets (the Makefile stamps it too).
	main, err := os.ReadFile(filepath.Join(repoRoot, "cmd", "resc", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^var version\b`).Match(main) {
		t.Error("cmd/resc/main.go declares no package variable version: -X main.version stamps nothing")
	}
}

func checkDockerfile(t *testing.T, d *dockerfile, goMinor string) {
	// Stages and their bases.
	sawGo := false
	for i, s := range d.stages {
		if s.parent == nil && strings.HasPrefix(s.base, "golang:") {
			sawGo = true
			if tag := strings.TrimPrefix(s.base, "golang:"); tag != goMinor && !strings.HasPrefix(tag, goMinor+".") && !strings.HasPrefix(tag, goMinor+"-") {
				t.Errorf("stage %q: FROM %s, but go.mod says go %s", s.name, s.base, goMinor)
			}
		}
		for _, in := range s.all("COPY") {
			for _, w := range strings.Fields(in.args) {
				if from, ok := strings.CutPrefix(w, "--from="); ok {
					src := d.stage(from)
					if src == nil || slices.Index(d.stages, src) >= i {
						t.Errorf("line %d: COPY --from=%s: no earlier stage of that name", in.line, from)
					}
				}
			}
		}
	}
	if !sawGo {
		t.Error("no stage FROM golang:<version>")
	}

	// Every go build: static, reproducible paths.
	builds := map[string]goBuild{}
	for _, s := range d.stages {
		env := s.env()
		for _, b := range goBuilds(s) {
			builds[b.pkg] = b
			if !strings.Contains(b.inline, "CGO_ENABLED=0") && env["CGO_ENABLED"] != "0" {
				t.Errorf("line %d: %s: CGO_ENABLED is not 0 (ENV of the stage or before the command): the binary may not be static", b.in.line, b.command)
			}
			if !strings.Contains(b.command, "-trimpath") {
				t.Errorf("line %d: %s: no -trimpath", b.in.line, b.command)
			}
		}
	}
	for _, pkg := range []string{"./cmd/resc", "./deploy/healthcheck", "./examples/worker", "./examples/demo-api"} {
		if _, ok := builds[pkg]; !ok {
			t.Errorf("no RUN go build ... %s", pkg)
		}
	}
	// The version stamped as the Makefile does, from a build argument.
	if b, ok := builds["./cmd/resc"]; ok {
		if !regexp.MustCompile(`-ldflags\s+"[^"]*-X main\.version=\$\{?VERSION\}?[\s"]`).MatchString(b.command) {
			t.Errorf("line %d: %s: the ldflags do not stamp -X main.version=${VERSION}", b.in.line, b.command)
		}
		declared := false
		for _, in := range b.stage.all("ARG") {
			if in.line < b.in.line && (in.args == "VERSION" || strings.HasPrefix(in.args, "VERSION=")) {
				declared = true
			}
		}
		if !declared {
			t.Errorf("line %d: no ARG VERSION in the stage that builds resc: ${VERSION} would be empty", b.in.line)
		}
	}

	// The runtime stages: the default (last) one is resc.
	final := d.stages[len(d.stages)-1]
	if final.name != "resc" {
		t.Errorf("the final stage (the default target) is %q, want resc", final.name)
	}
	checkRuntimeStage(t, final, "/usr/local/bin/resc", "/usr/local/bin/healthcheck")
	if demo := d.stage("demo"); demo == nil {
		t.Error("no stage demo (the compose demo's worker and API)")
	} else {
		checkRuntimeStage(t, demo, "/usr/local/bin/worker", "/usr/local/bin/demo-api", "/usr/local/bin/healthcheck")
	}
}

// checkRuntimeStage: a static base, a numeric non-root USER, the programs
// copied in, the ENTRYPOINT the first of them.
func checkRuntimeStage(t *testing.T, s *stage, programs ...string) {
	if s.parent != nil {
		t.Errorf("stage %s: built on stage %s: a runtime image should start from a static base image", s.name, s.base)
	}
	if s.base != "scratch" && !strings.HasPrefix(s.base, "gcr.io/distroless/static") {
		t.Errorf("stage %s: FROM %s: want gcr.io/distroless/static* or scratch (static binaries, nothing else)", s.name, s.base)
	}
	user, ok := s.last("USER")
	if !ok {
		t.Errorf("stage %s: no USER: it would run as root", s.name)
	} else {
		uid, gid, _ := strings.Cut(user.args, ":")
		n, err := strconv.Atoi(uid)
		if err != nil || n == 0 {
			t.Errorf("stage %s: USER %s: want a numeric uid other than 0 (a runtime can then verify it is not root)", s.name, user.args)
		}
		if gid != "" {
			if g, err := strconv.Atoi(gid); err != nil || g == 0 {
				t.Errorf("stage %s: USER %s: want a numeric gid other than 0", s.name, user.args)
			}
		}
	}
	copied := copiedTo(s)
	for _, p := range programs {
		if !copied[p] {
			t.Errorf("stage %s: %s is not copied in", s.name, p)
		}
	}
	if hc, ok := s.last("HEALTHCHECK"); ok && hc.args != "NONE" {
		_, cmd, _ := strings.Cut(hc.args, " CMD ")
		if argv, ok := execForm(strings.TrimSpace(cmd)); !ok || !copied[argv[0]] {
			t.Errorf("stage %s: HEALTHCHECK %s: want CMD [\"<a program copied in>\", ...] (no shell in the image)", s.name, hc.args)
		}
	}
	ep, ok := s.last("ENTRYPOINT")
	if !ok {
		t.Errorf("stage %s: no ENTRYPOINT", s.name)
		return
	}
	argv, ok := execForm(ep.args)
	if !ok {
		t.Errorf("stage %s: ENTRYPOINT %s: want the exec form [\"...\"] (no shell in the image, and signals reach the program)", s.name, ep.args)
	} else if argv[0] != programs[0] {
		t.Errorf("stage %s: ENTRYPOINT %q, want %s", s.name, argv, programs[0])
	}
}
