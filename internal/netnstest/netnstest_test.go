package netnstest

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The run inside sees a namespace of its own: its loopback, up, and no
// interface of the machine's; a bridge made there does not exist outside,
// and the namespace is gone once the test ends.
func TestEnterRunsTheTestInANamespaceOfItsOwn(t *testing.T) {
	if Name() == "" {
		// Registered before Enter's, so it runs after the namespace is deleted.
		t.Cleanup(func() {
			out, err := exec.Command("ip", "netns", "list").Output()
			if err != nil || strings.Contains(string(out), "mitosis-"+strconv.Itoa(os.Getpid())+"-") {
				t.Errorf("a namespace of this run is left (%v): %s", err, out)
			}
		})
	}
	if !Enter(t) {
		if _, err := net.InterfaceByName("mtest0"); err == nil {
			t.Error("the bridge made inside the namespace exists outside it")
		}
		return
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" || ifaces[0].Flags&net.FlagUp == 0 {
		t.Fatalf("interfaces inside: %v, want lo alone, up", ifaces)
	}
	Bridge(t, "mtest0", "10.77.0.1/24")
	l, err := net.Listen("tcp", "10.77.0.1:0")
	if err != nil {
		t.Fatalf("listening on the bridge's address: %v", err)
	}
	l.Close()
}
