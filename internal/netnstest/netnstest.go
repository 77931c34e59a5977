// Package netnstest runs a test inside a network namespace of its own,
// for tests whose guests have addresses outside 127.0.0.0/8: those may
// exist only there. The test is run again, as a process of its own, under
// `ip netns exec`; every process it starts (libvirtd and its QEMU guests,
// dnsmasq, HAProxy, Prometheus, agents) inherits the namespace, and so
// do its own clients. The machine's own namespace never carries the
// guests' traffic, and deleting the namespace removes its bridge, taps
// and addresses. Only tests import it.
//
//	func TestOnAGuestNetwork(t *testing.T) {
//		if !netnstest.Enter(t) {
//			return // the run inside the namespace was the test
//		}
//		br := netnstest.Bridge(t, "mbr0", "10.77.0.1/24")
//		...
//	}
package netnstest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// envName marks the run inside the namespace and names it.
const envName = "MITOSIS_TEST_NETNS"

var seq atomic.Int64

// Name is the namespace this process runs in, "" outside one.
func Name() string { return os.Getenv(envName) }

// Enter runs the calling test again inside a new network namespace, with
// its loopback up, unless it already runs in one. Inside, it returns true
// and the test goes on. Outside, it returns false once that run has ended,
// having failed t if it failed; its output is t's. The namespace is then
// deleted, after every process left in it has been killed by its PID.
// Only a top-level test may call it, as root (`make test` runs as root).
func Enter(t *testing.T) bool {
	t.Helper()
	if Name() != "" {
		return true
	}
	if strings.Contains(t.Name(), "/") {
		t.Fatalf("netnstest.Enter: %s is a subtest; call it from the top-level test", t.Name())
	}
	if os.Getuid() != 0 {
		t.Fatalf("%s makes a network namespace and needs root: run it as root (make test does)", t.Name())
	}
	ip := testenv.Binary(t, "ip")
	name := fmt.Sprintf("mitosis-%d-%d", os.Getpid(), seq.Add(1))
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { Delete(t, name) })
	Run(t, ip, "-n", name, "link", "set", "lo", "up")

	args := []string{"netns", "exec", name, os.Args[0],
		"-test.run", "^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count", "1", "-test.v"}
	if d, ok := t.Deadline(); ok {
		// Leave the outer run time to clean up after a run that timed out.
		args = append(args, "-test.timeout", (time.Until(d) - 30*time.Second).Round(time.Second).String())
	}
	cmd := exec.Command(ip, args...)
	cmd.Env = append(os.Environ(), envName+"="+name)
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	if err := cmd.Run(); err != nil {
		t.Errorf("%s, run inside network namespace %s, failed: %v", t.Name(), name, err)
	}
	return false
}

// Delete kills every process left in namespace name, by PID, and deletes
// the namespace.
func Delete(t testing.TB, name string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		t.Logf("ip netns pids %s: %v", name, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(pids) > 0 {
		t.Logf("killed %d processes left in network namespace %s: %v", len(pids), name, pids)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if left, _ := exec.Command("ip", "netns", "pids", name).Output(); len(bytes.TrimSpace(left)) == 0 {
			break
		}
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v: %s", name, err, out)
	}
}

// Run runs a command and fails the test if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Bridge makes a Linux bridge named name with address cidr (the host's
// side of the guests' network, such as 10.77.0.1/24) and brings it up.
// It must run inside a namespace: it is gone with it.
func Bridge(t testing.TB, name, cidr string) {
	t.Helper()
	mustInside(t)
	Run(t, "ip", "link", "add", name, "type", "bridge")
	// Forward at once: a bridge port learns nothing during STP's delay.
	Run(t, "ip", "link", "set", name, "type", "bridge", "forward_delay", "0", "stp_state", "0")
	Run(t, "ip", "addr", "add", cidr, "dev", name)
	Run(t, "ip", "link", "set", name, "up")
}

func mustInside(t testing.TB) {
	t.Helper()
	if Name() == "" {
		t.Fatal("netnstest: this makes interfaces, which only a test inside its own network namespace may (netnstest.Enter)")
	}
}

// DHCP is a dnsmasq serving addresses on a bridge (DHCP only, no DNS).
type DHCP struct {
	// LeaseFile is dnsmasq's lease file.
	LeaseFile string
	log       string
}

// ServeDHCP runs dnsmasq (Debian's dnsmasq-base) on bridge, leasing the
// addresses from first to last for an hour, and stops it by its PID when
// the test ends. It must run inside a namespace.
func ServeDHCP(t testing.TB, bridge, first, last string) *DHCP {
	t.Helper()
	mustInside(t)
	bin := testenv.Binary(t, "dnsmasq")
	dir := t.TempDir()
	d := &DHCP{LeaseFile: filepath.Join(dir, "leases"), log: filepath.Join(dir, "dnsmasq.log")}
	cmd := exec.Command(bin, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--interface="+bridge, "--bind-interfaces", "--except-interface=lo",
		"--dhcp-range="+first+","+last+",1h", "--dhcp-authoritative",
		"--dhcp-leasefile="+d.LeaseFile, "--pid-file="+filepath.Join(dir, "pid"),
		"--user=root", "--group=root", "--log-dhcp", "--log-facility="+d.log)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dnsmasq: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(d.log)
			t.Logf("dnsmasq log:\n%s%s", out.String(), b)
		}
	})
	select {
	case <-exited:
		t.Fatalf("dnsmasq exited at start: %s", out.String())
	case <-time.After(200 * time.Millisecond):
	}
	return d
}

// Lease is one line of dnsmasq's lease file.
type Lease struct {
	MAC, IP, Hostname string
}

// Leases reads the lease file: the leases dnsmasq holds now.
func (d *DHCP) Leases() ([]Lease, error) {
	b, err := os.ReadFile(d.LeaseFile)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Lease
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// expiry mac ip hostname client-id
		f := strings.Fields(sc.Text())
		if len(f) >= 4 {
			out = append(out, Lease{MAC: f[1], IP: f[2], Hostname: f[3]})
		}
	}
	return out, sc.Err()
}

// Neighbour is an entry of the host's neighbour (ARP) table.
type Neighbour struct {
	IP  string `json:"dst"`
	MAC string `json:"lladdr"`
}

// Neighbours reads the neighbour table of dev: who answers on which IP,
// as the host has seen it.
func Neighbours(dev string) ([]Neighbour, error) {
	out, err := exec.Command("ip", "-j", "neigh", "show", "dev", dev).Output()
	if err != nil {
		return nil, fmt.Errorf("ip neigh show dev %s: %w", dev, err)
	}
	var ns []Neighbour
	if err := json.Unmarshal(out, &ns); err != nil {
		return nil, fmt.Errorf("ip -j neigh: %w", err)
	}
	// An entry without a MAC is one the host is still resolving.
	return slices.DeleteFunc(ns, func(n Neighbour) bool { return n.MAC == "" }), nil
}
