package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The operator's commands told no, failing, or given bad flags: exit codes and
// messages, against the stub agent of ops_stub_test.go.

func TestOpsCommandsExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fail   string // "METHOD /path" to fail, with status and body
		status int
		body   string
		args   []string
		code   int
		shows  string // in the error or the output
	}{
		{"400", "POST /v1/clusters/web/clone", 400, `{"error":"template: required"}`, []string{"clone", "web", "web-1"}, 2, "template: required"},
		{"401", "GET /v1/status", 401, `{"error":"a valid bearer token is required"}`, []string{"status"}, 3, "a valid bearer token is required"},
		{"403", "POST /v1/clusters/web/pause", 403, `{"error":"grafana has the read role; this needs operate"}`, []string{"pause", "web"}, 1, "this needs operate"},
		{"404 cluster", "", 0, "", []string{"nodes", "db"}, 2, `cluster "db" is not configured`},
		{"404 why", "GET /v1/clusters/web/why", 404, `{"error":"no decision of cluster web at or before 2026-11-27T14:02:00Z is kept"}`, []string{"why", "web"}, 2, "no decision"},
		{"409 clone: the guardrails' reasons", "POST /v1/clusters/web/clone", 409,
			`{"seq":5,"decision":{"action":"expand","count":1},"reasons":[{"code":"max_size","message":"the cluster is at its max, 20"},{"code":"host_capacity","message":"no host has room"}]}`,
			[]string{"clone", "web", "web-1"}, 1, "refused: max_size: the cluster is at its max, 20\nrefused: host_capacity: no host has room"},
		{"409 detach", "POST /v1/clusters/web/detach", 409, `{"seq":6,"reasons":[{"code":"protected_node","message":"web-0 is protected"}]}`,
			[]string{"detach", "web", "web-0"}, 1, "refused: protected_node: web-0 is protected"},
		{"409 dry run off", "PUT /v1/clusters/web/dry-run", 409, `{"error":"the agent is configured to run dry"}`, []string{"dry-run", "web", "off"}, 1, "configured to run dry"},
		{"422 policy: the problems", "PUT /v1/policy", 422, `{"error":"the policy does not compile","problems":["scale.rego:3:1: rego_parse_error: unexpected eof token"]}`,
			[]string{"policy", "push", "POLICY"}, 1, "scale.rego:3:1: rego_parse_error"},
		{"500", "GET /v1/clusters/web/decisions", 500, `{"error":"registry: closed"}`, []string{"decisions", "web"}, 3, "registry: closed"},
		{"503", "POST /v1/clusters/web/clone", 503, `{"error":"the agent's loop did not take the request in time"}`, []string{"clone", "web", "web-1"}, 3, "did not take the request"},
		{"-o yaml", "", 0, "", []string{"status", "-o", "yaml"}, 2, `-o "yaml": want table or json`},
		{"an unknown flag", "", 0, "", []string{"nodes", "web", "--colour"}, 2, "unknown flag"},
		{"a missing argument", "", 0, "", []string{"clone", "web"}, 2, "accepts 2 arg(s)"},
		{"dry-run maybe", "", 0, "", []string{"dry-run", "web", "maybe"}, 2, `"maybe": want on or off`},
		{"--at yesterday", "", 0, "", []string{"why", "web", "--at", "yesterday"}, 2, "RFC 3339"},
		{"a bad limit", "", 0, "", []string{"decisions", "web", "--limit", "many"}, 2, "invalid argument"},
		{"no policy file", "", 0, "", []string{"policy", "push", "EMPTY"}, 2, "no .rego file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newContract(t)
			if tc.fail != "" {
				c.fail[tc.fail] = stubAnswer{tc.status, tc.body}
			}
			args := slices.Clone(tc.args)
			for i, a := range args {
				switch a {
				case "POLICY":
					args[i] = policyDir(t, map[string]string{"scale.rego": "package mitosis\n\nx := {\n"})
				case "EMPTY":
					args[i] = t.TempDir()
				}
			}
			out, code, err := c.run(args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d: %v\n%s", code, tc.code, err, out)
			}
			if !strings.Contains(out+fmt.Sprint(err), tc.shows) {
				t.Errorf("shows neither in the output nor the error %q:\n%s\n%v", tc.shows, out, err)
			}
		})
	}
}

// TestOpsCommandsReachingTheAgent: the token from each of its sources, the
// server from $MITOSIS_SERVER, and what happens without either.
func TestOpsCommandsReachingTheAgent(t *testing.T) {
	c := newContract(t)
	dir := t.TempDir()
	good, wrong := filepath.Join(dir, "good"), filepath.Join(dir, "wrong")
	os.WriteFile(good, []byte(stubToken+"\n"), 0o600)
	os.WriteFile(wrong, []byte("wr0ng-canary\n"), 0o600)
	clean := func() {
		for _, k := range []string{"MITOSIS_SERVER", "MITOSIS_TOKEN", "MITOSIS_TOKEN_FILE"} {
			t.Setenv(k, "")
		}
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
	}{
		{"$MITOSIS_SERVER and $MITOSIS_TOKEN", map[string]string{"MITOSIS_SERVER": c.srv.URL, "MITOSIS_TOKEN": stubToken}, nil, 0},
		{"$MITOSIS_TOKEN_FILE", map[string]string{"MITOSIS_TOKEN_FILE": good}, []string{"--server", c.srv.URL}, 0},
		{"--token-file over $MITOSIS_TOKEN", map[string]string{"MITOSIS_TOKEN": "wr0ng-canary"}, []string{"--server", c.srv.URL, "--token-file", good}, 0},
		{"a wrong token: 401", map[string]string{}, []string{"--server", c.srv.URL, "--token-file", wrong}, 3},
		{"no token", map[string]string{}, []string{"--server", c.srv.URL}, 2},
		{"a token file that is not there", map[string]string{}, []string{"--server", c.srv.URL, "--token-file", filepath.Join(dir, "none")}, 2},
		{"not a URL", map[string]string{"MITOSIS_TOKEN": stubToken}, []string{"--server", "127.0.0.1:9808"}, 2},
		{"unreachable", map[string]string{"MITOSIS_TOKEN": stubToken}, []string{"--server", "http://127.0.0.1:1"}, 3},
		{"a CA file that is not there", map[string]string{"MITOSIS_TOKEN": stubToken}, []string{"--server", "https://127.0.0.1:1", "--ca-file", filepath.Join(dir, "none")}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clean()
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, stderr, code, err := mitosis(t, append([]string{"status"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d: %v\n%s", code, tc.code, err, out)
			}
			for _, tok := range []string{stubToken, "wr0ng-canary"} {
				if strings.Contains(out+stderr+fmt.Sprint(err), tok) {
					t.Errorf("the token is shown: %v\n%s", err, out)
				}
			}
		})
	}

	// A slow agent: --timeout gives up, exit 3.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer slow.Close()
	clean()
	t.Setenv("MITOSIS_TOKEN", stubToken)
	start := time.Now()
	if _, _, code, err := mitosis(t, "status", "--server", slow.URL, "--timeout", "200ms"); code != 3 || time.Since(start) > 5*time.Second {
		t.Errorf("--timeout 200ms: exit %d after %v: %v", code, time.Since(start), err)
	}
}

// TestOpsCommandsHelpNamesTheExitCodes: each command's help documents the
// exit codes.
func TestOpsCommandsHelpNamesTheExitCodes(t *testing.T) {
	for _, cmd := range [][]string{{"status"}, {"nodes"}, {"ops"}, {"decisions"}, {"why"}, {"clone"}, {"detach"},
		{"pause"}, {"resume"}, {"dry-run"}, {"audit"}, {"policy", "push"}, {"policy", "show"}} {
		out, _, code, err := mitosis(t, append(cmd, "--help")...)
		if code != 0 || !strings.Contains(out, "Exit codes: 0 done; 1 refused") || !strings.Contains(out, "3 the agent cannot be used") {
			t.Errorf("%v --help: %d %v\n%s", cmd, code, err, out)
		}
	}
}

// TestOpsCommandsWhyCountsBackOnTheAgentsClock: on a simulated world
// "--at 15m" is 15 minutes before the world's now (its newest decision),
// not before this machine's.
func TestOpsCommandsWhyCountsBackOnTheAgentsClock(t *testing.T) {
	c := newContract(t)
	c.fail["GET /v1/status"] = stubAnswer{200, `{"simulated": true, "clusters": [{"name": "web", "min": 2, "max": 20,
		"last_decision": {"at": "2026-01-01T02:10:00Z", "decision": {"action": "none", "reason": "within"}}}]}`}
	for _, args := range [][]string{{"why", "web", "--at", "15m"}, {"why", "web", "--at", "15m", "-o", "json"}} {
		if _, code, err := c.run(args...); code != 0 {
			t.Fatalf("%v: exit %d: %v", args, code, err)
		}
		if r := c.last(); r.path != "/v1/clusters/web/why" || r.query != "at=2026-01-01T01%3A55%3A00Z" {
			t.Errorf("%v sent %+v, want at=2026-01-01T01:55:00Z", args, r)
		}
	}
}

// TestOpsCommandsShowDecisionErrors: a decision whose policy failed shows
// its error where the reason would be, in status, decisions and why.
func TestOpsCommandsShowDecisionErrors(t *testing.T) {
	c := newContract(t)
	failed := `{"seq": 50, "cluster": "web", "at": "2026-01-01T02:10:00Z", "policy_version": "abc", "decision": {"action": "none", "count": 0}, "error": "decision: must be an object"}`
	c.fail["GET /v1/status"] = stubAnswer{200, `{"clusters": [{"name": "web", "min": 2, "max": 20, "last_decision": ` + failed + `}]}`}
	c.fail["GET /v1/clusters/web/decisions"] = stubAnswer{200, `[` + failed + `]`}
	c.fail["GET /v1/clusters/web/why"] = stubAnswer{200, failed}
	out, _, _ := c.run("status")
	if !strings.Contains(out, "none: error: decision: must be an object") {
		t.Errorf("status:\n%s", out)
	}
	out, _, _ = c.run("decisions", "web")
	if rs := rows(t, out); len(rs) != 2 || strings.Join(rs[1][5:], " ") != "error: decision: must be an object" {
		t.Errorf("decisions:\n%s", out)
	}
	out, _, _ = c.run("why", "web")
	hasRow(t, out, "reason", "error:", "decision:", "must", "be", "an", "object")
}

// TestOpsCommandsRefusalIsToldOnce: a refused clone prints its reasons on
// standard output and nothing more on standard error; with -o json it
// prints the decision record the agent answered, and exits 1 all the same.
func TestOpsCommandsRefusalIsToldOnce(t *testing.T) {
	c := newContract(t)
	c.fail["POST /v1/clusters/web/clone"] = stubAnswer{409, `{"seq":5,"decision":{"action":"expand","count":1},"reasons":[{"code":"host_full","message":"no host has room"}]}`}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(stubToken), 0o600)
	var stdout, stderr strings.Builder
	code := run([]string{"clone", "web", "web-1", "--server", c.srv.URL, "--token-file", tokenFile}, &stdout, &stderr)
	if code != 1 || stdout.String() != "refused: host_full: no host has room\n" || stderr.String() != "" {
		t.Errorf("exit %d\nstdout %q\nstderr %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	code = run([]string{"clone", "web", "web-1", "-o", "json", "--server", c.srv.URL, "--token-file", tokenFile}, &stdout, &stderr)
	var rec plan.DecisionRecord
	if err := json.Unmarshal([]byte(stdout.String()), &rec); code != 1 || err != nil || rec.Seq != 5 || len(rec.Reasons) != 1 || rec.Reasons[0].Code != "host_full" {
		t.Errorf("-o json: exit %d (%v)\nstdout %q", code, err, stdout.String())
	}
	if !strings.Contains(stderr.String(), "409") {
		t.Errorf("-o json: stderr %q does not say it was refused", stderr.String())
	}
}

// TestOpsCommandsLimits: --limit below 1 is refused naming it, exit 2,
// before the agent is asked; audit takes --limit too.
func TestOpsCommandsLimits(t *testing.T) {
	c := newContract(t)
	for _, args := range [][]string{{"decisions", "web", "--limit", "0"}, {"decisions", "web", "--limit", "-1"},
		{"ops", "web", "--limit", "0"}, {"audit", "--limit", "-5"}} {
		_, code, err := c.run(args...)
		if code != 2 || err == nil || !strings.Contains(err.Error(), `"--limit"`) || !strings.Contains(err.Error(), "want at least 1") {
			t.Errorf("%v: exit %d, error %v", args, code, err)
		}
	}
	c.mu.Lock()
	seen := len(c.seen)
	c.mu.Unlock()
	if seen != 0 {
		t.Errorf("the agent was asked %d times", seen)
	}
	if _, code, err := c.run("audit", "--limit", "7"); code != 0 {
		t.Fatalf("audit --limit 7: exit %d: %v", code, err)
	}
	if r := c.last(); r.path != "/v1/audit" || r.query != "limit=7" {
		t.Errorf("audit --limit 7 sent %+v", r)
	}
	c.run("audit")
	if r := c.last(); r.path != "/v1/audit" || r.query != "" {
		t.Errorf("audit sent %+v", r)
	}
}

// TestOpsCommandsTreeMarksGoneTemplates: a clone whose template is gone is
// a root marked "from TEMPLATE (gone)", as the dashboard marks it; an
// original is not marked.
func TestOpsCommandsTreeMarksGoneTemplates(t *testing.T) {
	c := newContract(t)
	c.fail["GET /v1/clusters/web/nodes"] = stubAnswer{200, `[{"id": "web-0", "cluster": "web", "state": "ready", "host": "esx-1"},
		{"id": "web-5", "cluster": "web", "state": "ready", "host": "esx-2", "parent": "web-3", "lineage_depth": 2},
		{"id": "web-6", "cluster": "web", "state": "ready", "host": "esx-2", "parent": "web-5", "lineage_depth": 3}]`}
	out, code, err := c.run("nodes", "web", "--tree")
	if code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 || strings.Contains(lines[0], "gone") || !strings.HasPrefix(lines[1], "web-5  ready esx-2") ||
		!strings.HasSuffix(lines[1], "  from web-3 (gone)") || !strings.HasPrefix(lines[2], "└─ web-6") || strings.Contains(lines[2], "gone") {
		t.Errorf("tree:\n%s", out)
	}
}

// TestOpsCommandsRefuseBadFlagsAndFiles: a --timeout that is not positive,
// an empty token file, and policy push of a path that is no directory or
// of a file whose name is not plain are refused with exit 2, saying what is wrong.
func TestOpsCommandsRefuseBadFlagsAndFiles(t *testing.T) {
	c := newContract(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	rego := filepath.Join(dir, "p.rego")
	os.WriteFile(rego, []byte("package mitosis\n"), 0o600)
	badName := filepath.Join(dir, "badname")
	os.Mkdir(badName, 0o700)
	os.WriteFile(filepath.Join(badName, "a\nb.rego"), []byte("package mitosis\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--timeout", "-1s"}, "--timeout -1s: want a positive duration"},
		{[]string{"status", "--timeout", "0s"}, "--timeout 0s: want a positive duration"},
		{[]string{"policy", "push", filepath.Join(dir, "nope")}, filepath.Join(dir, "nope") + ": no such directory"},
		{[]string{"policy", "push", rego}, rego + " is a file; give the directory that holds it"},
		{[]string{"policy", "push", badName}, badName + `: policy file name "a\nb.rego": it holds a control character`},
		{[]string{"status", "extra"}, `mitosis status takes no arguments; got ["extra"]`},
	} {
		_, code, err := c.run(tc.args...)
		if code != 2 || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: exit %d, error %v; want 2 and %q", tc.args, code, err, tc.want)
		}
	}
	_, _, code, err := mitosis(t, "status", "--server", c.srv.URL, "--token-file", empty)
	if want := "--token-file " + empty + ": the file is empty"; code != 2 || err == nil || err.Error() != want {
		t.Errorf("an empty token file: exit %d, error %v; want 2 and %q", code, err, want)
	}
	if _, _, code, err := mitosis(t, "agent", "extra"); code != 2 || err == nil || err.Error() != `mitosis agent takes no arguments; got ["extra"]` {
		t.Errorf("agent extra: exit %d, error %v", code, err)
	}
}
