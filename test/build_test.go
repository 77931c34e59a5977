package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestMain removes the directory the commands were built into: a run
// leaves nothing behind in the temporary directory.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	// binDir holds every command the tests build, once made; TestMain
	// removes it.
	binDir     string
	makeBinDir = sync.OnceValue(func() error {
		var err error
		binDir, err = os.MkdirTemp("", "mitosis-e2e-bin-")
		return err
	})
)

// buildOnce builds a command of the repository once per test binary, with
// the build tags given, and returns its path.
func buildOnce(pkg, name string, tags ...string) func() (string, error) {
	return buildOnceEnv(nil, pkg, name, tags...)
}

// buildOnceEnv is buildOnce with env added to go build's environment.
func buildOnceEnv(env []string, pkg, name string, tags ...string) func() (string, error) {
	return sync.OnceValues(func() (string, error) {
		if err := makeBinDir(); err != nil {
			return "", err
		}
		bin := filepath.Join(binDir, name)
		args := []string{"build", "-o", bin}
		if len(tags) > 0 {
			args = append(args, "-tags", strings.Join(tags, ","))
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("building %s: %v\n%s", name, err, out)
		}
		return bin, nil
	})
}

var (
	buildDemoNode = buildOnce("../cmd/demo-node", "demo-node")
	buildMitosis  = buildOnce("../cmd/mitosis", "mitosis")
	// buildStaticDemoNode runs in a guest that has no C library.
	buildStaticDemoNode = buildOnceEnv([]string{"CGO_ENABLED=0"}, "../cmd/demo-node", "demo-node-static")
	// buildMitosisFailpoints has the chaos test's failpoints
	// (agent/failpoint.go).
	buildMitosisFailpoints = buildOnce("../cmd/mitosis", "mitosis-failpoints", "failpoints")
)

// built is the path of a command build made, or the test's end.
func built(t *testing.T, build func() (string, error)) string {
	t.Helper()
	bin, err := build()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// tokenIn writes the tests' token (the agents' and the nodes') to a file
// in dir and returns its path.
func tokenIn(t *testing.T, dir string) string {
	t.Helper()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
