package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// buildOnce builds a command of the repository once per test binary and
// returns its path.
func buildOnce(pkg, name string) func() (string, error) {
	return sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "mitosis-e2e-bin-")
		if err != nil {
			return "", err
		}
		bin := filepath.Join(dir, name)
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("building %s: %v\n%s", name, err, out)
		}
		return bin, nil
	})
}

var (
	buildDemoNode = buildOnce("../cmd/demo-node", "demo-node")
	buildMitosis  = buildOnce("../cmd/mitosis", "mitosis")
)
