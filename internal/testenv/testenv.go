// Package testenv finds the real components the tests run against
// (HAProxy, Prometheus, libvirt, QEMU, Chromium). A missing component
// fails the test, with how to install it: it is never skipped, so that a
// CI run without it cannot pass by testing less. `make deps` (run by
// `make test`) installs them all.
package testenv

import (
	"net"
	"os/exec"
	"testing"
)

// Binary returns the path of the named program, or fails the test.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed, and this test runs against the real one: run `make deps` (scripts/deps.sh installs it on Debian)", name)
	}
	return p
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for a server the test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
