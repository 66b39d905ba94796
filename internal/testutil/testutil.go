// Package testutil holds small helpers shared by the tests of several
// packages.
//
// It does not import package testing: its helpers take a TB, which
// *testing.T and *testing.B satisfy. So internal/proctest can build on it
// and still be linked into a program (loadtest's resc-load builds resc
// with it) without the testing package.
package testutil

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// TB is the part of testing.TB the helpers of this package and of
// internal/proctest use.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	Context() context.Context
	TempDir() string
}

// Buffer is a bytes.Buffer safe for concurrent use: a log sink or process
// output that a test reads while the code under test writes.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Poll calls cond until it holds or within has passed, and returns whether
// it held and cond's last description. It calls cond at once, then after 1
// ms, the wait doubling up to 10 ms between calls: a quick result is seen
// at once, a slow one costs a call every 10 ms. A test waits for a result
// this way, never by sleeping a guess.
//
// Poll fails nothing: it is for a goroutine other than the test's and for
// a test that reports the failure its own way; Eventually and
// EventuallyWithin fail the test.
func Poll(within time.Duration, cond func() (ok bool, state string)) (bool, string) {
	deadline := time.Now().Add(within)
	wait := time.Millisecond
	for {
		if ok, state := cond(); ok || !time.Now().Before(deadline) {
			return ok, state
		}
		time.Sleep(wait) // the polling interval, not a synchronisation
		wait = min(2*wait, 10*time.Millisecond)
	}
}

// Eventually polls cond (see Poll) until it holds, failing the test after
// 10 s.
func Eventually(t TB, what string, cond func() bool) {
	t.Helper()
	if ok, _ := Poll(10*time.Second, func() (bool, string) { return cond(), "" }); !ok {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// EventuallyWithin polls cond (see Poll) until it holds, failing the test
// when it does not within the given time: for a test whose time limit is
// part of what it checks.
func EventuallyWithin(t TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if ok, _ := Poll(within, func() (bool, string) { return cond(), "" }); !ok {
		t.Fatalf("not within %v: %s", within, what)
	}
}
