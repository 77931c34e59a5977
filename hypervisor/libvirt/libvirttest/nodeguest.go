package libvirttest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	lv "github.com/digitalocean/go-libvirt"
)

// The node guest: the reference application server (demo-node) in a VM,
// as mitosis meets one in production. A Debian kernel and an initramfs of
// busybox-static, the kernel's virtio NIC and serial modules, the QEMU
// guest agent (Debian's qemu-guest-agent, with the libraries it links)
// and a static demo-node the test built. Its NIC is on a bridge and leases
// its address by DHCP; demo-node serves work, /metrics and the node API on
// port NodePort of it.
//
// It re-identifies itself the way a live clone must (docs/hypervisors.md,
// "A clone's own network identity"): when its NIC loses its carrier (a
// live clone is restored with its links down), it forgets its address and
// re-probes the NIC, which then reads its MAC afresh from the device —
// the clone's own — and leases an address for it once the link is up
// again. A guest booted from a copy of the template's definition (a cold
// clone) sees that its SMBIOS uuid is not its template's and starts its
// demo-node as a clone waiting for its finalize.

// NodePort is the port demo-node listens on in the guest.
const NodePort = 8080

// nodeInit is the guest's /init. mitosis.node and mitosis.uuid come on
// the kernel command line: the node id (and host name) and the template
// domain's uuid.
const nodeInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in %s; do insmod /lib/modules/$m.ko || echo "mitosis-guest: insmod $m failed"; done
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
node=$(arg mitosis.node)
hostname "$node"
cloned=
[ "$(cat /sys/class/dmi/id/product_uuid)" = "$(arg mitosis.uuid)" ] || cloned=--cloned

# udev's work on a full system: name the virtio-serial ports.
mkdir -p /dev/virtio-ports
for p in /sys/class/virtio-ports/*; do ln -sf "/dev/${p##*/}" "/dev/virtio-ports/$(cat "$p/name")"; done
qemu-ga --daemonize --method virtio-serial --path /dev/virtio-ports/org.qemu.guest_agent.0 \
	--pidfile /run/qemu-ga.pid --statedir /run

ip link set lo up
dhcp() {
	udhcpc -i eth0 -f -s /etc/udhcpc.script -t 5 -T 1 -A 1 -x hostname:"$(hostname)" >/dev/console 2>&1 &
	dhcp_pid=$!
}
# A lost carrier: forget the address, re-probe the NIC (a device reset
# makes it read its MAC again), lease anew once the link is back.
reprobe() {
	kill $dhcp_pid; wait $dhcp_pid
	ip addr flush dev eth0
	dev=$(basename "$(readlink /sys/class/net/eth0/device)")
	echo -n "$dev" > /sys/bus/virtio/drivers/virtio_net/unbind
	echo -n "$dev" > /sys/bus/virtio/drivers/virtio_net/bind
	ip link set eth0 up
	echo "mitosis-guest: carrier lost; eth0 re-probed as $(cat /sys/class/net/eth0/address)"
	dhcp
}
ip link set eth0 up
dhcp
(
	had=0
	while true; do
		read -r c < /sys/class/net/eth0/carrier 2>/dev/null || c=
		if [ "$c" = 1 ]; then had=1
		elif [ $had = 1 ]; then had=0; reprobe
		fi
		usleep 100000
	done
) &

demo-node --id "$node" --listen :%d --allow-remote --token-file /etc/mitosis/token \
	--hold-max 30s --session-idle 2s --set-hostname $cloned >/dev/console 2>&1 &
echo "mitosis-guest-ready node=$node $cloned"
while true; do sleep 3600; done
`

// udhcpcScript configures the lease udhcpc got.
const udhcpcScript = `#!/bin/sh
case "$1" in
deconfig) ip addr flush dev "$interface" ;;
bound|renew)
	if ! ip addr show dev "$interface" | grep -q "inet $ip/"; then
		ip addr flush dev "$interface"
		ip addr add "$ip/$mask" dev "$interface"
		echo "mitosis-guest: leased $ip on $interface"
	fi
	;;
esac
`

// shutdownScript is what the guest agent runs for a shutdown
// (guest-shutdown): give the address back, then power off.
const shutdownScript = `#!/bin/sh
for p in $(pidof udhcpc); do kill -USR2 "$p"; done
sleep 0.3
poweroff -f
`

// NodeGuest is a template guest running the reference node.
type NodeGuest struct {
	Guest
	UUID   string // the domain's, given so the guest knows its own
	Bridge string // the bridge its NIC is on
}

// PrepareNodeGuest makes the files of a node guest named name, on bridge,
// in d.Dir; demoNode is a static demo-node binary (CGO_ENABLED=0) and
// token the node API's token.
func PrepareNodeGuest(t testing.TB, d *Daemon, name, bridge, demoNode, token string) NodeGuest {
	t.Helper()
	RequireQEMU(t)
	k := kernelFiles(t)
	g := NodeGuest{
		Guest: Guest{
			Name:   name,
			Kernel: filepath.Join(d.Dir, "vmlinuz"),
			Initrd: filepath.Join(d.Dir, "node-initrd"),
			Disk:   filepath.Join(d.Dir, name+".qcow2"),
			Log:    filepath.Join(d.Dir, name+".log"),
			Images: filepath.Join(d.Dir, "images"),
		},
		UUID:   newUUID(t),
		Bridge: bridge,
	}
	g.prepare(t, d, k.vmlinuz, func(path string) { writeNodeInitrd(t, path, k.modules, demoNode, token) })
	return g
}

// writeNodeInitrd writes the node guest's initramfs.
func writeNodeInitrd(t testing.TB, path, modules, demoNode, token string) {
	t.Helper()
	var c cpio
	for _, dir := range []string{"bin", "sbin", "dev", "proc", "sys", "run", "tmp", "etc", "etc/mitosis", "lib", "lib/modules", "lib64", "lib/x86_64-linux-gnu"} {
		c.dir(dir)
	}
	c.file("bin/busybox", 0o755, readFile(t, staticBusybox(t)))
	c.file("bin/demo-node", 0o755, readFile(t, demoNode))
	qga := lookPath(t, "qemu-ga")
	c.file("bin/qemu-ga", 0o755, readFile(t, qga))
	for _, lib := range sharedLibraries(t, qga) {
		c.file(strings.TrimPrefix(lib, "/"), 0o755, readFile(t, lib))
	}
	for _, m := range Modules {
		c.file("lib/modules/"+m+".ko", 0o644, readFile(t, filepath.Join(modules, m+".ko")))
	}
	c.file("etc/mitosis/token", 0o600, []byte(token+"\n"))
	c.file("etc/udhcpc.script", 0o755, []byte(udhcpcScript))
	c.file("sbin/shutdown", 0o755, []byte(shutdownScript))
	c.file("init", 0o755, fmt.Appendf(nil, nodeInit, strings.Join(Modules, " "), NodePort))
	if err := os.WriteFile(path, c.finish(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sharedLibraries lists what ldd says bin loads: the libraries and the
// dynamic loader, at the paths the loader looks them up by.
func sharedLibraries(t testing.TB, bin string) []string {
	t.Helper()
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x…)" or
		// "/lib64/ld-linux-x86-64.so.2 (0x…)"
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs
}

// XML is the guest's domain: 192 MiB, a virtio NIC on the bridge and
// the guest agent's channel besides what every test guest has.
func (g NodeGuest) XML() string {
	cmdline := fmt.Sprintf("console=ttyS0 quiet panic=-1 mitosis.node=%s mitosis.uuid=%s", g.Name, g.UUID)
	return g.domain(g.UUID, 192, cmdline, fmt.Sprintf(
		"<interface type='bridge'><source bridge='%s'/><model type='virtio'/></interface>\n    "+
			"<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>", g.Bridge))
}

// Boot defines and starts the guest on l and returns once its node has
// leased an address and said so on its console: the address.
func (g NodeGuest) Boot(t testing.TB, l *lv.Libvirt) string {
	t.Helper()
	g.start(t, l, g.XML())
	ip, err := WaitLease(g.Log, 90*time.Second)
	if err != nil {
		t.Fatalf("guest %s: %v", g.Name, err)
	}
	return ip
}

var leasedLine = regexp.MustCompile(`mitosis-guest: leased ([0-9.]+)`)

// WaitLease polls a node guest's serial log until it has leased an
// address, and returns the last one it leased.
func WaitLease(log string, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for {
		b, err := os.ReadFile(log)
		if m := leasedLine.FindAllSubmatch(b, -1); err == nil && len(m) > 0 {
			return string(m[len(m)-1][1]), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no lease in %s within %s (err %v); log tail:\n%s", log, within, err, tail(b, 1500))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func newUUID(t testing.TB) string {
	b, err := os.ReadFile("/proc/sys/kernel/random/uuid")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
