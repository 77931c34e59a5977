package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tokenFileWith writes token into a file of mode perm.
func tokenFileWith(t *testing.T, token string, perm os.FileMode) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	return f
}

// A --token-file or api.tokens file that others may write, or that holds
// a short token, stops the start naming the flag or key and the file;
// one others may read is warned of at start.
func TestTheAgentChecksItsTokenFiles(t *testing.T) {
	const good = "a-token-of-16+-bytes"
	file, _ := agentFiles(t, minimal)
	for _, c := range []struct {
		name, token string
		perm        os.FileMode
		want        string
	}{
		{"a world-writable --token-file", good, 0o666, ": writable by group or others (mode 0666)"},
		{"a one-character --token-file", "x\n", 0o600, ": the token is 1 bytes, too short to be secret: at least 16"},
	} {
		f := tokenFileWith(t, c.token, c.perm)
		_, code, err := runAgentLog(t, "--config", file, "--token-file", f, "--dry-run", "--listen", "127.0.0.1:0")
		if code != 2 || err == nil || !strings.HasPrefix(err.Error(), "--token-file: "+f+c.want) {
			t.Errorf("%s: exit %d, %v", c.name, code, err)
		}
	}
	f := tokenFileWith(t, good, 0o644)
	log, _, err := runAgentLog(t, "--config", file, "--token-file", f, "--dry-run", "--listen", "127.0.0.1:0")
	if err != nil || !strings.Contains(log, `"level":"WARN","msg":"--token-file: `+f+`: readable by group or others (mode 0644)`) {
		t.Errorf("a world-readable --token-file: %v; log %s", err, log)
	}

	admin := tokenFileWith(t, good, 0o600)
	listed := func(f string) string {
		file, _ := agentFiles(t, minimal+"api: {tokens: [{name: grafana, role: read, file: "+f+"}]}\n")
		return file
	}
	f = tokenFileWith(t, "another-token-16+-bytes", 0o662)
	_, code, err := runAgentLog(t, "--config", listed(f), "--token-file", admin, "--dry-run", "--listen", "127.0.0.1:0")
	if code != 2 || err == nil || !strings.HasPrefix(err.Error(), "api.tokens[0].file: "+f+": writable by group or others (mode 0662)") {
		t.Errorf("a group-writable api.tokens file: exit %d, %v", code, err)
	}
	f = tokenFileWith(t, "short", 0o600)
	_, code, err = runAgentLog(t, "--config", listed(f), "--token-file", admin, "--dry-run", "--listen", "127.0.0.1:0")
	if code != 2 || err == nil || !strings.HasPrefix(err.Error(), "api.tokens[0].file: "+f+": the token is 5 bytes") {
		t.Errorf("a short api.tokens token: exit %d, %v", code, err)
	}
	f = tokenFileWith(t, "another-token-16+-bytes", 0o640)
	log, _, err = runAgentLog(t, "--config", listed(f), "--token-file", admin, "--dry-run", "--listen", "127.0.0.1:0")
	if err != nil || !strings.Contains(log, `"level":"WARN","msg":"api.tokens[0].file: `+f+`: readable by group or others (mode 0640)`) || strings.Contains(log, "another-token") {
		t.Errorf("a group-readable api.tokens file: %v; log %s", err, log)
	}
}
