package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/config"
)

// An api.tokens file others may write, or with a short token, is refused
// by the agent itself too (whoever embeds it), naming the key and file.
func TestTheAgentRefusesTokenFilesOthersMayWriteOrShortTokens(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		token string
		perm  os.FileMode
		want  string
	}{
		{"a-token-of-16+-bytes", 0o666, "writable by group or others (mode 0666)"},
		{"x", 0o600, "the token is 1 bytes"},
	} {
		f := filepath.Join(dir, c.want[:5])
		if err := os.WriteFile(f, []byte(c.token), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, c.perm); err != nil {
			t.Fatal(err)
		}
		_, err := loadTokens(config.APIConfig{Tokens: []config.TokenConfig{{Name: "g", Role: "read", File: f}}}, nil)
		if err == nil || !strings.HasPrefix(err.Error(), "api.tokens[0].file: "+f+": "+c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}
