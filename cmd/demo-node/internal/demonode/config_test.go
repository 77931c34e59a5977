package demonode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

func TestListenMustBeLoopbackUnlessAllowed(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:8080", false, true},
		{"[::1]:8080", false, true},
		{"localhost:8080", false, true},
		{"127.0.0.2:0", false, true},
		{":8080", false, false}, // every interface
		{"0.0.0.0:8080", false, false},
		{"10.1.2.3:8080", false, false},
		{"example.com:8080", false, false},
		{"10.1.2.3:8080", true, true},
		{"127.0.0.1", false, false}, // no port
	} {
		if err := checkListen(tc.addr, tc.remote); (err == nil) != tc.ok {
			t.Errorf("checkListen(%q, remote %v): %v, want ok %v", tc.addr, tc.remote, err, tc.ok)
		}
	}
}

func TestTokenComesFromTheFileElseTheEnvironment(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == TokenEnv {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"file", []string{"--token-file", file}, "from-env", "from-file"},
		{"environment", nil, "from-env", "from-env"},
		{"none", nil, "", ""},
		{"missing file", []string{"--token-file", file + ".nope"}, "from-env", ""},
	} {
		cfg, err := ParseConfig(append([]string{"--id", "n"}, tc.args...), env(tc.env), io.Discard)
		if got := string(cfg.Token); got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("%s: token %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := ParseConfig([]string{"--listen", "0.0.0.0:80"}, env("t"), io.Discard); err == nil {
		t.Error("a remote --listen without --allow-remote: accepted")
	}
}

// The token never shows in a log line, at any level, nor in the state
// file, nor in the formatted configuration.
func TestTokenNeverLogged(t *testing.T) {
	const canary = "canary-7f3a9c1e5b"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(canary), 0o600); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() {
		exited <- Main(ctx, []string{"--id", "web-1", "--listen", "127.0.0.1:0", "--token-file", tokenFile,
			"--state-dir", stateDir, "--log-level", "debug"}, func(string) string { return "" }, &logs)
	}()
	addr := awaitAddr(t, &logs)
	base := "http://" + addr

	call := func(method, path, token, body string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/work?key=a", "", "", 200},
		{"GET", "/v1/status", canary, "", 200},
		{"GET", "/v1/status", canary + "x", "", 401},
		{"POST", "/v1/prepare", canary, `{"operation":"op-1","mode":"nope"}`, 400},
		{"POST", "/v1/prepare", canary, `{"operation":"op-1","mode":"suspend"}`, 200},
		{"POST", "/-/snapshot?file=" + stateDir + "/s.state", canary, "", 200},
		{"POST", "/-/snapshot?file=/tmp/x", canary, "", 400},
		{"POST", "/-/snapshot?file=" + stateDir + "/s.state", "", "", 401},
		{"POST", "/v1/resume", canary, `{"operation":"op-1"}`, 200},
		{"GET", "/metrics", "", "", 200},
	} {
		if got := call(c.method, c.path, c.token, c.body); got != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, got, c.want)
		}
	}
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit code %d after the context ended, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Main did not return within 10 s of its context ending")
	}

	out := logs.String()
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "node API call") || !strings.Contains(out, "snapshot written") {
		t.Fatalf("want debug logs of every call, got:\n%s", out)
	}
	if strings.Contains(out, canary) {
		t.Errorf("the token is in the logs:\n%s", out)
	}
	if b, err := os.ReadFile(filepath.Join(stateDir, "s.state")); err != nil || bytes.Contains(b, []byte(canary)) {
		t.Errorf("state file: %v, or it holds the token", err)
	}

	cfg, err := ParseConfig([]string{"--id", "n"}, func(string) string { return canary }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).Debug("config", "cfg", cfg, "token", cfg.Token)
	for _, s := range []string{buf.String(), fmt.Sprintf("%v %+v %#v %s %q", cfg, cfg, cfg, cfg.Token, cfg.Token)} {
		if strings.Contains(s, canary) {
			t.Errorf("the configuration shows the token: %s", s)
		}
	}
	if n, err := New(cfg, slog.New(slog.DiscardHandler)); err != nil || n.API == nil {
		t.Errorf("a node with the token from the environment: %v", err)
	}
}

var servingAddr = regexp.MustCompile(`msg=serving addr=(\S+)`)

// awaitAddr waits for the node to log the address it serves on.
func awaitAddr(t *testing.T, logs *testenv.Buffer) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m := servingAddr.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node did not log its address within 5 s:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A --listen port that is not decimal digits from 0 to 65535 is a bad
// flag (exit 2, naming --listen), found before listening.
func TestListenPortMustBeADecimalNumberInRange(t *testing.T) {
	env := func(string) string { return "t" }
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"127.0.0.1:65535", true},
		{"127.0.0.1:8080", true},
		{"127.0.0.1:abc", false},
		{"127.0.0.1:http", false},
		{"127.0.0.1:99999", false},
		{"127.0.0.1:65536", false},
		{"127.0.0.1:-1", false},
		{"127.0.0.1:+80", false},
		{"127.0.0.1: 80", false},
		{"127.0.0.1:", false},
		{"127.0.0.1:99999999999999999999999", false},
	} {
		_, err := ParseConfig([]string{"--id", "n", "--listen", tc.addr}, env, io.Discard)
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "--listen")) {
			t.Errorf("--listen %q: %v, want ok %v (an error naming --listen)", tc.addr, err, tc.ok)
		}
		if tc.ok {
			continue
		}
		var out bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a node that did start would stop at once, with 0
		if code := Main(ctx, []string{"--id", "n", "--listen", tc.addr}, env, &out); code != 2 || !strings.Contains(out.String(), "--listen") {
			t.Errorf("demo-node --listen %q: exit %d, %q; want 2 naming --listen", tc.addr, code, out.String())
		}
	}
}

// A --state-dir that is not an existing directory is a bad flag: every
// snapshot would fail in it.
func TestStateDirMustBeAnExistingDirectory(t *testing.T) {
	env := func(string) string { return "t" }
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a node that did start would stop at once, with 0
	for _, dir := range []string{filepath.Join(t.TempDir(), "nonexistent"), file} {
		var out bytes.Buffer
		if code := Main(ctx, []string{"--id", "n", "--listen", "127.0.0.1:0", "--state-dir", dir}, env, &out); code != 2 ||
			!strings.Contains(out.String(), "--state-dir") {
			t.Errorf("--state-dir %s: exit %d, %q; want 2 naming --state-dir", dir, code, out.String())
		}
	}
	if _, err := ParseConfig([]string{"--id", "n", "--state-dir", t.TempDir()}, env, io.Discard); err != nil {
		t.Errorf("an existing --state-dir: %v", err)
	}
}

// --cloned and --set-hostname are off by default; --cloned with
// --from-state is a bad flag: a state file says what state to start in.
func TestClonedAndSetHostnameFlags(t *testing.T) {
	env := func(string) string { return "t" }
	cfg, err := ParseConfig([]string{"--id", "n"}, env, io.Discard)
	if err != nil || cfg.Cloned || cfg.SetHostname {
		t.Errorf("defaults: cloned %v, set-hostname %v, %v; want both off", cfg.Cloned, cfg.SetHostname, err)
	}
	cfg, err = ParseConfig([]string{"--id", "n", "--cloned", "--set-hostname"}, env, io.Discard)
	if err != nil || !cfg.Cloned || !cfg.SetHostname {
		t.Errorf("--cloned --set-hostname: cloned %v, set-hostname %v, %v; want both on", cfg.Cloned, cfg.SetHostname, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a node that did start would stop at once, with 0
	var out bytes.Buffer
	if code := Main(ctx, []string{"--id", "n", "--listen", "127.0.0.1:0", "--cloned", "--from-state", "/x.state"}, env, &out); code != 2 ||
		!strings.Contains(out.String(), "--cloned, --from-state") {
		t.Errorf("--cloned --from-state: exit %d, %q; want 2 naming both", code, out.String())
	}
}
