// Package haproxytest starts a real HAProxy for tests: a frontend on a
// free loopback port, the backend "app" (least connections, sessions kept
// on their server by dynamic cookies) with the servers given, a runtime
// API socket at admin level and another at operator level, and HAProxy's
// Prometheus exporter on another port. It is stopped, by its PID, when
// the test ends.
package haproxytest

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// Instance is a running HAProxy.
type Instance struct {
	// Socket is the runtime API socket (level admin).
	Socket string
	// OperatorSocket is a runtime API socket at level operator, which may
	// look but not change servers.
	OperatorSocket string
	// Frontend is the frontend's base URL, http://127.0.0.1:PORT.
	Frontend string
	// Metrics is HAProxy's own Prometheus exporter (per-server request
	// counts, sessions…), http://127.0.0.1:PORT/metrics.
	Metrics string
}

// Start runs HAProxy with the backend "app" holding servers (lines such
// as "server web-1 127.0.0.1:8081"), and a backend "other" that tests can
// check is never touched.
func Start(t testing.TB, servers ...string) *Instance {
	t.Helper()
	bin := testenv.Binary(t, "haproxy")
	dir := t.TempDir()
	in := &Instance{Socket: filepath.Join(dir, "admin.sock"), OperatorSocket: filepath.Join(dir, "operator.sock")}
	fe, prom := testenv.FreeAddr(t), testenv.FreeAddr(t)
	in.Frontend, in.Metrics = "http://"+fe, "http://"+prom+"/metrics"
	var lines strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&lines, "    %s\n", s)
	}
	cfg := fmt.Sprintf(`global
    stats socket %s mode 600 level admin
    stats socket %s mode 600 level operator
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend fe
    bind %s
    default_backend app
frontend prometheus
    bind %s
    http-request use-service prometheus-exporter if { path /metrics }
backend app
    balance leastconn
    cookie SRV insert indirect nocache dynamic
    dynamic-cookie-key mitosis-test
    default-server pool-purge-delay 200ms
%sbackend other
    server db-1 127.0.0.1:9
`, in.Socket, in.OperatorSocket, fe, prom, lines.String())
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", path, "-db")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("haproxy exited: %s", out.String())
		default:
		}
		c, err := net.Dial("unix", in.Socket)
		if err == nil {
			c.Close()
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy's runtime API did not come up: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Command runs one runtime API command and returns HAProxy's answer.
func (in *Instance) Command(t testing.TB, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", in.Socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, cmd)
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("haproxy: %q: %v", cmd, err)
	}
	return string(b)
}

// Servers is the answer of "show servers state app".
func (in *Instance) Servers(t testing.TB) string { return in.Command(t, "show servers state app") }
