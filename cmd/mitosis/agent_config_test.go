package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// minimal is an agent's file with no acting section: it runs only dry.
const minimal = `tick: 15s
clusters:
  - {name: web, min: 2, max: 5}
metrics: {url: "http://127.0.0.1:1", queries: [{name: utilization, query: up, per_node: true}]}
`

// runAgent runs `mitosis agent` in process on a context already ended, so
// that an agent that starts stops at once: the exit code it would end
// with, its standard output and the error main would print.
func runAgent(t *testing.T, args ...string) (stdout string, code int, err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"agent", "--listen", "127.0.0.1:0"}, args...))
	if err = cmd.ExecuteContext(ctx); err != nil {
		code = 2
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return out.String(), code, err
}

// agentFiles writes the agent's file and a token file.
func agentFiles(t *testing.T, config string) (file, token string) {
	t.Helper()
	dir := t.TempDir()
	file, token = filepath.Join(dir, "agent.yaml"), filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte("s3cret-admin-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, token
}

func TestTheDryRunFlagCountsBeforeTheFileIsChecked(t *testing.T) {
	file, token := agentFiles(t, minimal)
	out, code, err := runAgent(t, "--config", file, "--token-file", token, "--dry-run")
	if err != nil || !strings.Contains(out, "mitosis agent listening on") {
		t.Fatalf("--dry-run on a file without a hypervisor: exit %d, %v; output %q", code, err, out)
	}
	_, code, err = runAgent(t, "--config", file, "--token-file", token)
	if code != 2 || err == nil || !strings.Contains(err.Error(), file+": hypervisor.kind: required") {
		t.Errorf("without --dry-run: exit %d, %v; want 2 and hypervisor.kind: required", code, err)
	}
}

func TestSimulateOnAFileOfMachinesSaysItsWorldIsNotSimulated(t *testing.T) {
	file, token := agentFiles(t, minimal+"dry_run: true\n")
	_, code, err := runAgent(t, "--config", file, "--token-file", token, "--simulate")
	if code != 2 || err == nil || err.Error() != "--simulate: "+file+": its world is machines (world.kind is not sim)" {
		t.Errorf("exit %d, %v", code, err)
	}
}

// Params the policy refuses would fail every tick: the agent does not
// start, and names the file, the cluster and the key.
func TestTheAgentRefusesPolicyParamsThePolicyRefuses(t *testing.T) {
	file, token := agentFiles(t, strings.Replace(minimal, "max: 5}", "max: 5, policy_params: {targt: 0.5}}", 1))
	_, code, err := runAgent(t, "--config", file, "--token-file", token, "--dry-run")
	want := file + `: clusters[0] (web).policy_params: invalid policy params: unknown param "targt"`
	if code != 2 || err == nil || err.Error() != want {
		t.Errorf("exit %d, %v; want 2 and %q", code, err, want)
	}
}
