package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/config"
)

// A token file anyone may write, or a token short enough to guess, is
// refused naming the file; one others may read is warned of.
func TestTokenFilesAreChecked(t *testing.T) {
	dir := t.TempDir()
	const good = "0123456789abcdef" // 16 bytes
	for _, c := range []struct {
		name, token string
		mode        os.FileMode
		err, warn   string
	}{
		{name: "600", token: good + "\n", mode: 0o600},
		{name: "400", token: good, mode: 0o400},
		{name: "world-writable", token: good, mode: 0o666, err: "writable by group or others (mode 0666)"},
		{name: "group-writable", token: good, mode: 0o620, err: "writable by group or others (mode 0620)"},
		{name: "group-readable", token: good, mode: 0o640, warn: "readable by group or others (mode 0640)"},
		{name: "world-readable", token: good, mode: 0o604, warn: "readable by group or others (mode 0604)"},
		{name: "one character", token: "x\n", mode: 0o600, err: "the token is 1 bytes, too short to be secret: at least 16"},
		{name: "15 bytes", token: good[:15], mode: 0o600, err: "the token is 15 bytes"},
		{name: "empty", token: " \n", mode: 0o600, err: "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(dir, c.name)
			if err := os.WriteFile(f, []byte(c.token), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, c.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			tok, warn, err := config.ReadTokenFile(f)
			switch {
			case c.err != "":
				if err == nil || !strings.HasPrefix(err.Error(), f+": "+c.err) {
					t.Errorf("got %v, want %q", err, c.err)
				}
			case err != nil || tok != good:
				t.Errorf("got %q, %v", tok, err)
			case c.warn == "" && warn != "" || c.warn != "" && !strings.HasPrefix(warn, f+": "+c.warn):
				t.Errorf("warning %q, want %q", warn, c.warn)
			}
			if err != nil && strings.Contains(err.Error(), good[:15]) || strings.Contains(warn, good) {
				t.Errorf("the token is in %v / %q", err, warn)
			}
		})
	}
	if _, _, err := config.ReadTokenFile(dir); err == nil || !strings.Contains(err.Error(), dir+": not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}
