package client_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A program that calls the agent must not carry the agent: the client
// imports the API's bodies (agent/wire) and the records it answers (plan),
// never the daemon nor any back-end (DESIGN.md, the floors).
func TestTheClientCarriesNoBackEnd(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the go command is not on PATH, and this test lists the client's dependencies with it: %v", err)
		}
		t.Skipf("no go command on PATH to list the client's dependencies: %v", err)
	}
	const module = "github.com/mitosis-autoscaler/mitosis"
	out, err := exec.Command(goCmd, "list", "-deps", module+"/agent/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	// Of this module, only these; of the others, none of these back-ends.
	ownAllowed := map[string]bool{module + "/agent/client": true, module + "/agent/wire": true, module + "/plan": true}
	backEnds := []string{"libvirt", "govmomi", "hashicorp/raft", "open-policy-agent"}
	for _, p := range strings.Fields(string(out)) {
		if (p == module || strings.HasPrefix(p, module+"/")) && !ownAllowed[p] {
			t.Errorf("agent/client depends on %s: it may use only agent/wire and plan of this module", p)
		}
		for _, b := range backEnds {
			if strings.Contains(p, b) {
				t.Errorf("agent/client depends on %s, a back-end's package", p)
			}
		}
	}
}
