package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/agenttest"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

func TestTheOperatorsCommands(t *testing.T) {
	ag := agenttest.Start(t)
	server, admin, reader := ag.Server, ag.AdminFile, ag.ReaderFile
	as := func(tokenFile string, args ...string) (string, int, error) {
		t.Helper()
		out, _, code, err := mitosis(t, append(args, "--server", server, "--token-file", tokenFile)...)
		if err != nil && (strings.Contains(err.Error(), "canary") || strings.Contains(out, "canary")) {
			t.Errorf("%v: the token is shown: %v %s", args, err, out)
		}
		return out, code, err
	}
	// Wait for the first decision.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, code, _ := as(admin, "decisions", "web")
		if code == 0 && strings.Count(out, "\n") > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no decision: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	out, code, err := as(reader, "status")
	if code != 0 || !strings.Contains(out, "CLUSTER") || !strings.Contains(out, "web") {
		t.Fatalf("status: %d %v\n%s", code, err, out)
	}
	out, code, _ = as(reader, "nodes", "web", "-o", "json")
	var nodes []plan.Node
	if code != 0 || json.Unmarshal([]byte(out), &nodes) != nil || len(nodes) < 2 {
		t.Fatalf("nodes -o json: %d\n%s", code, out)
	}
	template := nodes[0].ID

	// A read token may not clone: refused, exit 1.
	if _, code, _ := as(reader, "clone", "web", template); code != 1 {
		t.Errorf("clone with a read token: exit %d, want 1", code)
	}
	out, code, err = as(admin, "clone", "web", template)
	if code != 0 || !strings.Contains(out, "operation ") {
		t.Fatalf("clone: %d %v\n%s", code, err, out)
	}
	opID := strings.Fields(out)[1]
	out, _, _ = as(reader, "ops", "web")
	if !strings.Contains(out, opID) || !strings.Contains(out, "expand") {
		t.Errorf("ops does not list %s:\n%s", opID, out)
	}
	// A node that does not exist is a 404: bad input, exit 2, named.
	if out, code, err := as(admin, "clone", "web", "no-such-node"); code != 2 || !strings.Contains(fmt.Sprint(err), `"no-such-node" is not a node of cluster web`) {
		t.Errorf("clone of a node that does not exist: exit %d, %v\n%s", code, err, out)
	}
	out, _, _ = as(reader, "why", "web", "--at", "0s")
	if !strings.Contains(out, "reason") || !strings.Contains(out, "metrics") {
		t.Errorf("why:\n%s", out)
	}

	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"pause", "web"}, "true"},
		{[]string{"dry-run", "web", "on"}, "true"},
		{[]string{"resume", "web"}, "false"},
		{[]string{"dry-run", "web", "off"}, "false"},
	} {
		out, code, err := as(admin, step.args...)
		if code != 0 || !strings.Contains(out, step.want) {
			t.Errorf("%v: %d %v\n%s", step.args, code, err, out)
		}
	}
	out, _, _ = as(reader, "audit")
	for _, action := range []string{"clone", "pause", "resume", "dry-run"} {
		if !strings.Contains(out, action) {
			t.Errorf("audit lacks %s:\n%s", action, out)
		}
	}

	out, code, _ = as(reader, "policy", "show")
	if code != 0 || !strings.Contains(out, "version") {
		t.Errorf("policy show: %d\n%s", code, out)
	}
	broken := t.TempDir()
	_ = os.WriteFile(filepath.Join(broken, "p.rego"), []byte("package mitosis\n\ndecision := {\n"), 0o600)
	if out, code, _ := as(admin, "policy", "push", broken); code != 1 || !strings.Contains(out, "p.rego:") {
		t.Errorf("push of a broken policy: exit %d\n%s", code, out)
	}
	// A policy with no tests: refused, unless --no-tests, and the audit
	// trail then says it had none.
	untested := t.TempDir()
	_ = os.WriteFile(filepath.Join(untested, "p.rego"), []byte("package mitosis\n\ndecision := {\"action\": \"none\", \"reason\": \"x\"}\n"), 0o600)
	if out, code, err := as(admin, "policy", "push", untested); code != 1 || !strings.Contains(out, "no tests") || !strings.Contains(fmt.Sprint(err), "--no-tests") {
		t.Errorf("push of a policy with no tests: exit %d, %v\n%s", code, err, out)
	}
	if out, code, err := as(admin, "policy", "push", "--no-tests", untested); code != 0 || !strings.Contains(out, "in use (no tests)") {
		t.Errorf("push --no-tests: exit %d, %v\n%s", code, err, out)
	}
	if out, _, _ := as(reader, "audit"); !strings.Contains(out, "(no tests: pushed with no_tests)") {
		t.Errorf("the audit trail does not say the push had no tests:\n%s", out)
	}
	if out, code, err := as(admin, "policy", "push", "../../policies"); code != 0 || !strings.Contains(out, "in use") {
		t.Errorf("push of the default policy: %d %v\n%s", code, err, out)
	}

	// Exit codes of what cannot be done.
	for _, c := range []struct {
		args []string
		file string
		want int
	}{
		{[]string{"nodes", "db"}, reader, 2},            // 404
		{[]string{"status", "-o", "yaml"}, reader, 2},   // a bad flag
		{[]string{"dry-run", "web", "maybe"}, admin, 2}, // a bad argument
		{[]string{"peers", "list"}, reader, 2},          // no raft: 404
		{[]string{"why"}, reader, 2},                    // usage
	} {
		if _, code, err := as(c.file, c.args...); code != c.want {
			t.Errorf("%v: exit %d (%v), want %d", c.args, code, err, c.want)
		}
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	_ = os.WriteFile(wrong, []byte("nope-canary"), 0o600)
	if _, code, _ := as(wrong, "status"); code != 3 {
		t.Errorf("a wrong token: exit %d, want 3", code)
	}
	if _, _, code, err := mitosis(t, "status", "--server", "http://127.0.0.1:1", "--token-file", admin); code != 3 || strings.Contains(fmt.Sprint(err), "canary") {
		t.Errorf("an unreachable agent: exit %d, %v", code, err)
	}
}
