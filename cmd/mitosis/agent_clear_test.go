package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// runAgentLog is runAgent with the agent's log (standard error) too.
func runAgentLog(t *testing.T, args ...string) (log string, code int, err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"agent"}, args...))
	if err = cmd.ExecuteContext(ctx); err != nil {
		code = 2
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return errOut.String(), code, err
}

// The API without TLS on an address the network reaches is refused,
// naming --listen, unless --insecure (or api.insecure) says so; then the
// agent warns of it at start.
func TestTheAPIInTheClearNeedsInsecure(t *testing.T) {
	file, token := agentFiles(t, minimal)
	_, code, err := runAgentLog(t, "--config", file, "--token-file", token, "--dry-run", "--listen", "0.0.0.0:0")
	if code != 2 || err == nil || !strings.HasPrefix(err.Error(), "--listen: 0.0.0.0:0 is reachable from the network, and the API has no tls") {
		t.Errorf("without --insecure: exit %d, %v", code, err)
	}
	log, code, err := runAgentLog(t, "--config", file, "--token-file", token, "--dry-run", "--listen", "0.0.0.0:0", "--insecure")
	if err != nil || !strings.Contains(log, `"level":"WARN","msg":"in the clear: the API is served without TLS on 0.0.0.0:0`) {
		t.Errorf("with --insecure: exit %d, %v; log %s", code, err, log)
	}
	file, _ = agentFiles(t, minimal+"api: {insecure: true}\n")
	log, code, err = runAgentLog(t, "--config", file, "--token-file", token, "--dry-run", "--listen", "0.0.0.0:0")
	if err != nil || !strings.Contains(log, `"level":"WARN","msg":"in the clear: the API is served without TLS`) {
		t.Errorf("with api.insecure: exit %d, %v; log %s", code, err, log)
	}
	log, _, err = runAgentLog(t, "--config", file, "--token-file", token, "--dry-run", "--listen", "127.0.0.1:0")
	if err != nil || strings.Contains(log, "in the clear") {
		t.Errorf("on loopback: %v; log %s", err, log)
	}
}
