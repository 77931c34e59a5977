// Package mitosis_test keeps the repository's floors (docs/architecture.md):
// every package sits on a floor, and no package imports one on a higher floor.
package mitosis_test

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/mitosis-autoscaler/mitosis"

// floors lists the repository's packages from the ground up. A package
// belongs to the first pattern it matches: an exact path, or a prefix
// ending in "/" (its subpackages). A package that matches nothing fails the
// test, so a new package gets a floor on purpose.
var floors = []struct {
	name     string
	packages []string
}{
	{"ground: the pure core and the contracts", []string{"plan", "hypervisor", "metrics", "node", "internal/"}},
	{"policy", []string{"policy", "policies"}},
	{"controller", []string{"autoscaler", "autoscaler/"}},
	{"back-ends, worlds, registry, configuration", []string{
		"hypervisor/", "metrics/", "node/", "dispatcher/", "raftstore", "sim", "sim/", "config", "config/"}},
	{"agent", []string{"agent", "agent/"}},
	{"commands", []string{"cmd/"}},
	{"end-to-end tests, assets and this test", []string{"test", "deploy", ""}},
}

// forbidden are imports that the floors allow but the design does not:
// the agent runs a simulated world through its World port, never sim itself.
var forbidden = map[string][]string{
	"agent": {"sim"},
}

// closed are packages whose whole dependency set outside the standard
// library is named: a program that calls the agent (agent/client, and the
// API's bodies in agent/wire) carries none of its back-ends, raft, OPA or
// the simulator.
var closed = map[string][]string{
	"agent/client": {"agent/client", "agent/wire", "plan"},
	"agent/wire":   {"agent/wire", "plan"},
}

func TestTheAPIsClientCarriesNoBackEnd(t *testing.T) {
	for pkg, allowed := range closed {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", module+"/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		for _, dep := range deps {
			if !slices.Contains(allowed, strings.TrimPrefix(dep, module+"/")) {
				t.Errorf("%s depends on %s: it may use only %v and the standard library", pkg, dep, allowed)
			}
		}
		if len(deps) == 0 {
			t.Errorf("go list -deps %s named nothing", pkg)
		}
	}
}

func floorOf(pkg string) int {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	for i, f := range floors {
		for _, p := range f.packages {
			if rel == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(rel, p)) {
				return i
			}
		}
	}
	return -1
}

func TestNoPackageImportsAHigherFloor(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg, imports := fields[0], fields[1:]
		floor := floorOf(pkg)
		if floor < 0 {
			t.Errorf("%s has no floor: add it to floors in floors_test.go and to docs/architecture.md", pkg)
			continue
		}
		checked++
		for _, imp := range imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			if f := floorOf(imp); f > floor {
				t.Errorf("%s (floor %q) imports %s (floor %q, higher)", pkg, floors[floor].name, imp, floors[f].name)
			}
			rel := strings.TrimPrefix(pkg, module+"/")
			for _, no := range forbidden[rel] {
				if imp == module+"/"+no {
					t.Errorf("%s imports %s, which the design forbids", pkg, imp)
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked only %d packages: go list printed\n%s", checked, out)
	}
}

func TestFloorOf(t *testing.T) {
	for pkg, want := range map[string]int{
		module + "/plan":                    0,
		module + "/hypervisor":              0,
		module + "/hypervisor/libvirt":      3,
		module + "/autoscaler/registrytest": 2,
		module + "/agent/client":            4,
		module + "/cmd/mitosis":             5,
		module + "/nosuch":                  -1,
	} {
		if got := floorOf(pkg); got != want {
			t.Errorf("floorOf(%s) = %d, want %d", pkg, got, want)
		}
	}
}

// The daemon and the command are read most by whoever takes the code over:
// a file of theirs holds one job, short enough to read in one sitting.
func TestDaemonFilesStayShort(t *testing.T) {
	const limit = 400
	for _, dir := range []string{"agent", "cmd/mitosis"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if n := bytes.Count(data, []byte("\n")); n > limit {
				t.Errorf("%s has %d lines, more than %d: split it by what its parts do", path, n, limit)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
