package haproxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy/haproxytest"
)

var (
	_ autoscaler.Dispatcher     = (*haproxy.Dispatcher)(nil)
	_ autoscaler.SessionCounter = (*haproxy.Dispatcher)(nil)
)

// lb is a real HAProxy whose backend "app" has one static server, web-1,
// a test HTTP server.
type lb struct {
	*haproxytest.Instance
	socket, frontend string
	web1             *backend
}

// backend is a test HTTP server that names itself in every answer and
// can hold requests open.
type backend struct {
	name string
	srv  *httptest.Server
	hold chan struct{} // requests to /hold wait until it is closed
	once sync.Once
}

func newBackend(t *testing.T, name string) *backend {
	b := &backend{name: name, hold: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-b.hold
		}
		fmt.Fprint(w, b.name)
	}))
	t.Cleanup(func() { b.release(); b.srv.Close() })
	return b
}

func (b *backend) release()     { b.once.Do(func() { close(b.hold) }) }
func (b *backend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

func startHAProxy(t *testing.T) *lb {
	t.Helper()
	web1 := newBackend(t, "web-1")
	in := haproxytest.Start(t, "server web-1 "+web1.addr())
	return &lb{Instance: in, socket: in.Socket, frontend: in.Frontend, web1: web1}
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *lb) dispatcher(t *testing.T) *haproxy.Dispatcher {
	t.Helper()
	d, err := haproxy.New(context.Background(), haproxy.Config{
		Socket: l.socket, Backend: "app", Servers: []string{"web-1"}, ServerOptions: "pool-purge-delay 200ms",
		DynamicCookies: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// who asks the frontend on a new connection which backend answers.
func (l *lb) who(t *testing.T) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get(l.frontend + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("frontend: %s %s", resp.Status, b)
	}
	return string(b)
}

func (l *lb) servers(t *testing.T) string { return l.Servers(t) }

func TestAttachDrainRemoveAgainstARealHAProxy(t *testing.T) {
	l := startHAProxy(t)
	d := l.dispatcher(t)
	ctx := context.Background()
	clone := newBackend(t, "clone")

	// Attach: traffic reaches the new server; attaching again changes nothing.
	for range 2 {
		if err := d.Attach(ctx, "mitosis-op-1", clone.addr()); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(l.servers(t), " mitosis-op-1 "); n != 1 {
		t.Fatalf("%d servers mitosis-op-1 after two attaches:\n%s", n, l.servers(t))
	}
	seen := map[string]int{}
	for range 20 {
		seen[l.who(t)]++
	}
	if seen["clone"] == 0 || seen["web-1"] == 0 {
		t.Fatalf("answers by server %v: want both", seen)
	}

	// Drain: no new connection goes to web-1.
	for range 2 {
		if err := d.Drain(ctx, "web-1"); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		if got := l.who(t); got != "clone" {
			t.Fatalf("a drained server got new work: answered by %s", got)
		}
	}
	// Attach after a drain sends it work again (the template's resume).
	if err := d.Attach(ctx, "web-1", l.web1.addr()); err != nil {
		t.Fatal(err)
	}
	seen = map[string]int{}
	for range 20 {
		seen[l.who(t)]++
	}
	if seen["web-1"] == 0 {
		t.Fatalf("web-1 re-attached but got no work: %v", seen)
	}

	// Remove: gone from HAProxy; removing again is success.
	for range 2 {
		if err := d.Remove(ctx, "mitosis-op-1"); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(l.servers(t), "mitosis-op-1") {
		t.Errorf("still in HAProxy after Remove:\n%s", l.servers(t))
	}
	for range 10 {
		if got := l.who(t); got != "web-1" {
			t.Fatalf("answered by %s after the clone was removed", got)
		}
	}
}

func TestSessionsCountsOpenConnectionsAndRemoveWaitsForThem(t *testing.T) {
	l := startHAProxy(t)
	d := l.dispatcher(t)
	ctx := context.Background()

	held := make(chan error, 1)
	go func() {
		resp, err := http.Get(l.frontend + "/hold")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		held <- err
	}()
	eventually(t, "one session on web-1", func() error {
		n, err := d.Sessions(ctx, "web-1")
		if err == nil && n != 1 {
			err = fmt.Errorf("%d sessions", n)
		}
		return err
	})
	if err := d.Drain(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	// HAProxy will not delete a server with a connection open.
	err := d.Remove(ctx, "web-1")
	var ce *haproxy.CommandError
	if !errors.As(err, &ce) || !strings.HasPrefix(ce.Command, "del server app/web-1") {
		t.Fatalf("Remove with a session open: %v, want HAProxy's refusal", err)
	}
	l.web1.release()
	if err := <-held; err != nil {
		t.Fatalf("the held request failed: %v", err)
	}
	eventually(t, "no session on web-1", func() error {
		n, err := d.Sessions(ctx, "web-1")
		if err == nil && n != 0 {
			err = fmt.Errorf("%d sessions", n)
		}
		return err
	})
	// Its idle server-side connection is closed within a few purge
	// delays (pool-purge-delay 200ms here; HAProxy's default is 5 s).
	eventually(t, "web-1 removed", func() error { return d.Remove(ctx, "web-1") })
	if n, err := d.Sessions(ctx, "web-1"); err != nil || n != 0 {
		t.Errorf("sessions of a removed server: %d, %v", n, err)
	}
}

func TestAttachMovesAServerToItsNewAddress(t *testing.T) {
	l := startHAProxy(t)
	d := l.dispatcher(t)
	ctx := context.Background()
	moved := newBackend(t, "moved")
	if err := d.Attach(ctx, "web-1", moved.addr()); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if got := l.who(t); got != "moved" {
			t.Fatalf("answered by %s, want the new address", got)
		}
	}
}

func TestRefusesWhatIsNotItsToTouch(t *testing.T) {
	l := startHAProxy(t)
	ctx := context.Background()
	if _, err := haproxy.New(ctx, haproxy.Config{Socket: l.socket, Backend: "ap"}); err == nil ||
		!strings.Contains(err.Error(), `backend "ap" not found`) || !strings.Contains(err.Error(), "app") {
		t.Errorf("a backend HAProxy lacks: %v", err)
	}
	if _, err := haproxy.New(ctx, haproxy.Config{Socket: l.socket, Backend: "app/x"}); err == nil {
		t.Error("an invalid backend name was accepted")
	}
	if _, err := haproxy.New(ctx, haproxy.Config{Socket: filepath.Join(t.TempDir(), "nope.sock"), Backend: "app"}); err == nil ||
		!strings.Contains(err.Error(), "nope.sock") {
		t.Errorf("a missing socket: %v", err)
	}
	d := l.dispatcher(t)
	for _, node := range []string{"db-1", "web-2", "web-1;shutdown", "../x", ""} {
		if err := d.Drain(ctx, node); err == nil {
			t.Errorf("Drain(%q) was accepted", node)
		}
		if err := d.Attach(ctx, node, "127.0.0.1:1"); err == nil {
			t.Errorf("Attach(%q) was accepted", node)
		}
	}
	for _, addr := range []string{"127.0.0.1", "example.com:80", "127.0.0.1:0", "127.0.0.1:http"} {
		if err := d.Attach(ctx, "mitosis-x", addr); err == nil {
			t.Errorf("Attach at %q was accepted", addr)
		}
	}
	if strings.Contains(l.servers(t), "mitosis-x") {
		t.Error("a refused attach left a server behind")
	}
}

func TestHAProxyErrorsSurface(t *testing.T) {
	l := startHAProxy(t)
	d := l.dispatcher(t)
	err := d.Drain(context.Background(), "mitosis-absent")
	var ce *haproxy.CommandError
	if !errors.As(err, &ce) || ce.Answer != "No such server." || !strings.Contains(err.Error(), "set server app/mitosis-absent state drain") {
		t.Errorf("draining an absent server: %v", err)
	}
}

// A session (HAProxy's dynamic cookie) stays on its server, an attached
// clone included, and a drain lets it finish there while new sessions go
// elsewhere.
func TestSessionsStayOnTheirServerThroughADrain(t *testing.T) {
	l := startHAProxy(t)
	d := l.dispatcher(t)
	ctx := context.Background()
	clone := newBackend(t, "clone")
	if err := d.Attach(ctx, "mitosis-op-1", clone.addr()); err != nil {
		t.Fatal(err)
	}
	// Sessions on new connections until one lands on each server.
	sessions := map[string]*http.Client{}
	for i := 0; len(sessions) < 2; i++ {
		if i > 50 {
			t.Fatalf("no session on both servers after 50 tries: %v", sessions)
		}
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		if who := ask(t, c, l.frontend); sessions[who] == nil {
			sessions[who] = c
		}
	}
	for who, c := range sessions {
		for range 5 {
			if got := ask(t, c, l.frontend); got != who {
				t.Fatalf("a session of %s went to %s", who, got)
			}
		}
	}
	if err := d.Drain(ctx, "mitosis-op-1"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if got := ask(t, sessions["clone"], l.frontend); got != "clone" {
			t.Fatalf("a session of the drained server went to %s", got)
		}
	}
	for range 10 {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		if got := ask(t, c, l.frontend); got != "web-1" {
			t.Fatalf("a new session went to the drained server")
		}
	}
}

func ask(t *testing.T, c *http.Client, frontend string) string {
	t.Helper()
	resp, err := c.Get(frontend + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A port with a sign, a service name or out of range is refused before
// HAProxy is asked anything (HAProxy refuses "+80" only once told to add
// it): the fake answers New alone, so any command would time out.
func TestAttachTakesOnlyAPortOfDecimalDigitsInRange(t *testing.T) {
	sock := fakeAPI(t, map[string]string{"show backend": backends})
	d, err := haproxy.New(context.Background(), haproxy.Config{Socket: sock, Backend: "app", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"127.0.0.1:+80", "127.0.0.1:-80", "127.0.0.1:0", "127.0.0.1:000", "127.0.0.1:65536",
		"127.0.0.1:99999999999999999999", "127.0.0.1:0x50", "127.0.0.1: 80", "127.0.0.1:", "127.0.0.1:http", "[::1]:+80"} {
		err := d.Attach(context.Background(), "mitosis-z", addr)
		if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "bad port") {
			t.Errorf("Attach at %q: %v, want refused for its port before any command", addr, err)
		}
	}
}

// A port written with leading zeros is the same port: attaching a server
// HAProxy has at 127.0.0.1 port 80 with "127.0.0.1:080" only sets it
// ready. The fake knows no "set server … addr" command: a move would time
// out.
func TestAttachWithLeadingZerosInThePortIsNotAMove(t *testing.T) {
	header := "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
	line := "3 app 2 mitosis-z 127.0.0.1 2 0 1 1 5 1 0 0 0 0 0 0 - 80 - 0 0 - - 0\n"
	sock := fakeAPI(t, map[string]string{
		"show backend":                         backends,
		"show servers state app":               "1\n" + header + line + "\n",
		"set server app/mitosis-z state ready": "\n",
	})
	d, err := haproxy.New(context.Background(), haproxy.Config{Socket: sock, Backend: "app", Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"127.0.0.1:80", "127.0.0.1:080", "127.0.0.1:00080"} {
		if err := d.Attach(context.Background(), "mitosis-z", addr); err != nil {
			t.Errorf("Attach at %q of a server at 127.0.0.1 port 80: %v, want only set ready", addr, err)
		}
	}
}

// Against HAProxy: a clone attached with "0PORT" is added at PORT and
// takes work there.
func TestAttachNormalisesLeadingZerosForHAProxy(t *testing.T) {
	l := startHAProxy(t)
	d := l.dispatcher(t)
	ctx := context.Background()
	z := newBackend(t, "z")
	ip, port, _ := strings.Cut(z.addr(), ":")
	if err := d.Attach(ctx, "mitosis-z", ip+":0"+port); err != nil {
		t.Fatal(err)
	}
	if err := d.Drain(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	if got := l.who(t); got != "z" {
		t.Errorf("answered by %s, want the clone attached at %s:0%s", got, ip, port)
	}
	if err := d.Attach(ctx, "mitosis-z", z.addr()); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(l.servers(t), "\n") {
		if f := strings.Fields(line); len(f) > 18 && f[3] == "mitosis-z" { // srv_name, srv_addr … srv_port
			found = true
			if f[4] != ip || f[18] != port {
				t.Errorf("mitosis-z in HAProxy: %q, want at %s port %s", line, ip, port)
			}
		}
	}
	if !found {
		t.Error("mitosis-z is not in HAProxy")
	}
}
