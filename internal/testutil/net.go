package testutil

import (
	"errors"
	"net"
	"os"
	"time"
)

// FreePort is a loopback TCP address, host:port, nobody listened on a
// moment ago.
func FreePort(t TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// SilentListener is a loopback TCP listener standing for a server that must
// not be contacted: assertNoConnection fails the test if anything connected
// to addr.
func SilentListener(t TB) (addr string, assertNoConnection func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	addr = ln.Addr().String()
	return addr, func() {
		t.Helper()
		// A connection made earlier waits in the backlog: Accept returns it
		// at once. Nothing is pending when it times out.
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
		c, err := ln.Accept()
		if err == nil {
			c.Close()
			t.Fatalf("something connected to %s: no connection was expected", addr)
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("accept: %v", err)
		}
	}
}
