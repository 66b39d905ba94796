package proctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/resc-go/resc/internal/testutil"
)

// Process is a running resc process of a test, its stdout and stderr
// captured. Its methods fail the test on an error, with the process's
// stderr; they are for the test's goroutine, except Stdout, Stderr and
// Done, which are safe for concurrent use.
type Process struct {
	t      testutil.TB
	cmd    *exec.Cmd
	stdout testutil.Buffer
	stderr testutil.Buffer
	done   chan struct{} // closed when the process has exited
}

// Start starts the binary of Binary with args. Its environment is the
// test's without the variables resc reads (RESC_*, OTEL_*), plus
// RESC_LOG=info, so that the test can follow the process in its log, plus
// env. A process still running at the end of the test is killed then, and
// its stderr logged: no process outlives its test.
func Start(t testutil.TB, env []string, args ...string) *Process {
	t.Helper()
	return StartProgram(t, Binary(t), env, args...)
}

// StartProgram is Start for another binary (BuildPackage's).
func StartProgram(t testutil.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(baseEnv(), env...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() { // ends with the process, which the cleanup below makes sure of
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.exited() {
			return
		}
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Logf("%s %q was killed at the end of the test; its stderr:\n%s", filepath.Base(bin), args, p.stderr.String())
	})
	return p
}

// baseEnv is the test's environment without the variables resc reads,
// plus RESC_LOG=info.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RESC_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return append(env, "RESC_LOG=info")
}

// Stdout returns what the process wrote to its stdout so far.
func (p *Process) Stdout() string { return p.stdout.String() }

// Stderr returns what the process wrote to its stderr (its log) so far.
func (p *Process) Stderr() string { return p.stderr.String() }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the process's exit code, -1 when a signal killed it; only
// once it has exited (Done).
func (p *Process) ExitCode() int { return p.cmd.ProcessState.ExitCode() }

// Fatalf fails the test with the message and the process's stderr.
func (p *Process) Fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("%s\nresc stderr:\n%s", fmt.Sprintf(format, args...), p.stderr.String())
}

// Signal sends sig (syscall.SIGTERM, SIGSTOP, SIGCONT...) to the process.
func (p *Process) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.Fatalf("signal %v: %v", sig, err)
	}
}

// Kill sends SIGKILL to the process. It does not wait for the process to
// die: Wait does, so that several can be killed at once.
func (p *Process) Kill() { p.t.Helper(); p.Signal(syscall.SIGKILL) }

// Wait waits for the process to exit, up to timeout, and returns its exit
// code (-1 when a signal killed it).
func (p *Process) Wait(timeout time.Duration) int {
	p.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.ExitCode()
	case <-timer.C:
		p.Fatalf("resc did not exit within %v", timeout)
		return -1
	}
}

// Stop sends SIGTERM and checks that the process exits 0 within timeout.
func (p *Process) Stop(timeout time.Duration) {
	p.t.Helper()
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(timeout); code != 0 {
		p.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// Eventually polls cond (testutil.Poll) until it holds, failing the test
// with what, cond's last description and the process's stderr after
// within, or as soon as the process has exited without cond holding.
func (p *Process) Eventually(within time.Duration, what string, cond func() (bool, string)) {
	p.t.Helper()
	var held, exited bool
	_, state := testutil.Poll(within, func() (bool, string) {
		exited = p.exited() // first: a cond false after the exit stays false
		var state string
		held, state = cond()
		return held || exited, state
	})
	switch {
	case held:
	case exited:
		p.Fatalf("resc exited (code %d) before %s; got %s", p.ExitCode(), what, state)
	default:
		p.Fatalf("after %v: want %s; got %s", within, what, state)
	}
}

// WaitLog waits, up to within, until the process's stderr contains s.
func (p *Process) WaitLog(within time.Duration, s string) {
	p.t.Helper()
	p.Eventually(within, fmt.Sprintf("stderr containing %q", s), func() (bool, string) {
		return strings.Contains(p.stderr.String(), s), "not yet"
	})
}
