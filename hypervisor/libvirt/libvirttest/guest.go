package libvirttest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	lv "github.com/digitalocean/go-libvirt"
)

// The guest: a Debian kernel and an initramfs of busybox-static whose
// init keeps a counter in shell memory and prints it on the serial
// console. A clone that continues its template's memory prints the
// template's boot id and goes on counting from where the template was; a
// clone that booted would print a new boot id from 0.
//
// The kernel comes from one exact Debian package (apt-get download, not
// installed; a glob over linux-image-* would fetch every version) and is
// kept in the cache directory, so only the first run downloads it.
const KernelPackage = "linux-image-6.1.0-56-amd64"

const guestInit = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
read boot < /proc/sys/kernel/random/boot_id
echo "mitosis-guest-ready boot=$boot"
i=0
while true; do
  echo "mitosis-counter boot=$boot n=$i"
  i=$((i+1))
  /bin/busybox sleep 0.2
done
`

// CacheDir is where the kernel (and libvirt's cache of QEMU's
// capabilities) are kept between runs, never committed:
// $XDG_CACHE_HOME/mitosis-test, else /var/cache/mitosis-test for root
// (whose home a session daemon's user cannot enter), else
// ~/.cache/mitosis-test. `make clean` does not touch it.
func CacheDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" && os.Getuid() == 0 {
		base = "/var/cache"
	}
	if base == "" {
		var err error
		if base, err = os.UserCacheDir(); err != nil {
			t.Fatalf("no cache directory for the test kernel: %v", err)
		}
	}
	dir := filepath.Join(base, "mitosis-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// RequireQEMU fails the test if QEMU, qemu-img or libvirt's QEMU driver
// is missing.
func RequireQEMU(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img"} {
		lookPath(t, bin)
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so"); err != nil {
		t.Fatalf("libvirt's QEMU driver is missing; %s", InstallHint)
	}
}

// Kernel returns the cached guest kernel, downloading it the first time.
func Kernel(t testing.TB) string {
	t.Helper()
	return kernelFiles(t).vmlinuz
}

// kernel is what the guests take from the kernel package: the kernel, and
// the modules of a virtio NIC and of the guest agent's virtio-serial port
// (Debian builds them as modules), in a directory.
type kernel struct {
	vmlinuz, modules string
}

// Modules are the kernel modules the node guest loads, in the order they
// must be loaded (each needs the ones before it).
var Modules = []string{
	"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
	"failover", "net_failover", "virtio_net", "virtio_console",
}

// kernelFiles returns the cached kernel and modules, fetching the package
// once: a cache from before the modules were kept fetches it again.
func kernelFiles(t testing.TB) kernel {
	t.Helper()
	dir := CacheDir(t)
	version := strings.TrimPrefix(KernelPackage, "linux-image-")
	k := kernel{vmlinuz: filepath.Join(dir, "vmlinuz-"+version), modules: filepath.Join(dir, "modules-"+version)}
	if _, err := os.Stat(k.vmlinuz); err == nil {
		if _, err := os.Stat(k.modules); err == nil {
			return k
		}
	}
	for _, tool := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the test kernel is not in %s and %s is missing to fetch it (a Debian host is needed)", dir, tool)
		}
	}
	tmp, err := os.MkdirTemp(dir, "download-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dl := exec.Command("apt-get", "download", KernelPackage)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download %s: %v\n%s\n(if Debian has dropped this exact version, set KernelPackage to what `apt-cache depends linux-image-amd64` names)", KernelPackage, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, KernelPackage+"_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download %s left %v", KernelPackage, debs)
	}
	// Files of their own first: tests in parallel may fetch at once.
	mods := filepath.Join(tmp, "modules")
	if err := os.Mkdir(mods, 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, m := range Modules {
		want[m+".ko"] = true
	}
	found := map[string]bool{}
	unpack(t, debs[0], func(name string, r io.Reader) {
		var to string
		switch base := filepath.Base(name); {
		case strings.HasPrefix(name, "./boot/vmlinuz-"):
			to = filepath.Join(tmp, "vmlinuz")
		case strings.HasPrefix(name, "./lib/modules/") && want[base]:
			to = filepath.Join(mods, base)
		default:
			return
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
		found[filepath.Base(to)] = true
	})
	if !found["vmlinuz"] || len(found) != len(want)+1 {
		t.Fatalf("%s lacks some of /boot/vmlinuz-* and the modules %v (found %v)", debs[0], Modules, found)
	}
	// Another test may have put them in place meanwhile: the same files.
	if err := os.Rename(mods, k.modules); err != nil {
		if _, serr := os.Stat(k.modules); serr != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(filepath.Join(tmp, "vmlinuz"), k.vmlinuz); err != nil {
		t.Fatal(err)
	}
	return k
}

// unpack calls file for each regular file of a Debian package's data.
func unpack(t testing.TB, deb string, file func(name string, r io.Reader)) {
	t.Helper()
	fs := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	fs.Stderr = &stderr
	out, err := fs.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Start(); err != nil {
		t.Fatal(err)
	}
	// A Fatal below (a bad package, a file that cannot be written) leaves
	// dpkg-deb blocked on its pipe: kill it and reap it.
	waited := false
	defer func() {
		if !waited {
			_ = fs.Process.Kill()
			_ = fs.Wait()
		}
	}()
	tr := tar.NewReader(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", deb, err)
		}
		if h.Typeflag == tar.TypeReg {
			file(h.Name, tr)
		}
	}
	_, _ = io.Copy(io.Discard, out)
	waited = true
	if err := fs.Wait(); err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile: %v: %s", err, stderr.String())
	}
}

// WriteInitrd writes the initramfs (an uncompressed newc cpio, which the
// kernel takes as is) to path.
func WriteInitrd(t testing.TB, path string) {
	t.Helper()
	bb := readFile(t, staticBusybox(t))
	var c cpio
	c.dir("bin")
	c.dir("dev")
	c.dir("proc")
	c.file("bin/busybox", 0o755, bb)
	c.file("init", 0o755, []byte(guestInit))
	if err := os.WriteFile(path, c.finish(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// staticBusybox is busybox-static's binary, which a guest runs without
// any library.
func staticBusybox(t testing.TB) string {
	t.Helper()
	const busybox = "/bin/busybox"
	f, err := elf.Open(busybox)
	if err != nil {
		t.Fatalf("%s: %v; the guest needs busybox-static: %s", busybox, err, InstallHint)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked; the guest needs busybox-static: %s", busybox, InstallHint)
		}
	}
	return busybox
}

// cpio writes the "newc" format: a 110-byte ASCII header, the name, its
// NUL, padded to 4 bytes, then the data, padded to 4 bytes.
type cpio struct {
	b   bytes.Buffer
	ino int
}

func (c *cpio) entry(name string, mode int, data []byte) {
	c.ino++
	fmt.Fprintf(&c.b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.b.WriteString(name + "\x00")
	c.pad()
	c.b.Write(data)
	c.pad()
}

func (c *cpio) pad() {
	for c.b.Len()%4 != 0 {
		c.b.WriteByte(0)
	}
}

func (c *cpio) dir(name string)                      { c.entry(name, 0o040755, nil) }
func (c *cpio) file(name string, perm int, b []byte) { c.entry(name, 0o100000|perm, b) }
func (c *cpio) finish() []byte                       { c.entry("TRAILER!!!", 0, nil); return c.b.Bytes() }

// Guest is a template guest's files, in its daemon's directory and
// belonging to the guests' user.
type Guest struct {
	Name   string // the domain's
	Kernel string
	Initrd string
	Disk   string // an empty 16 MiB qcow2
	Log    string // its serial console
	Images string // an empty directory for libvirt.Config.ImageDir
}

// PrepareGuest makes the files of a guest named name in d.Dir.
func PrepareGuest(t testing.TB, d *Daemon, name string) Guest {
	t.Helper()
	RequireQEMU(t)
	g := Guest{
		Name:   name,
		Kernel: filepath.Join(d.Dir, "vmlinuz"),
		Initrd: filepath.Join(d.Dir, "initrd"),
		Disk:   filepath.Join(d.Dir, "base.qcow2"),
		Log:    filepath.Join(d.Dir, name+".log"),
		Images: filepath.Join(d.Dir, "images"),
	}
	g.prepare(t, d, Kernel(t), func(path string) { WriteInitrd(t, path) })
	return g
}

// prepare makes g's files: a copy of kernel (the guests' user reads it
// from the daemon's directory), the initramfs that initrd writes, an
// empty 16 MiB qcow2 disk and the image directory, all the guests' user's.
func (g Guest) prepare(t testing.TB, d *Daemon, kernel string, initrd func(path string)) {
	t.Helper()
	if err := os.MkdirAll(g.Images, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.Kernel, readFile(t, kernel), 0o644); err != nil {
		t.Fatal(err)
	}
	initrd(g.Initrd)
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", g.Disk, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	for _, p := range []string{g.Images, g.Kernel, g.Initrd, g.Disk} {
		d.Chown(t, p)
	}
}

// XML is the guest's domain: 128 MiB, one vCPU under TCG with a 32 MiB
// translation cache, one virtio disk, one user-mode NIC, the serial
// console to Log.
func (g Guest) XML() string {
	return g.domain("", 128, "console=ttyS0 quiet panic=-1", "<interface type='user'><model type='virtio'/></interface>")
}

// domain is a guest's domain XML: memory MiB, one vCPU under TCG with a
// 32 MiB translation cache, the kernel booted with cmdline, one virtio
// disk, the devices given, the serial console to Log. An empty uuid is
// libvirt's to choose.
func (g Guest) domain(uuid string, memory int, cmdline, devices string) string {
	if uuid != "" {
		uuid = "\n  <uuid>" + uuid + "</uuid>"
	}
	return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>%s
  <memory unit='MiB'>%d</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>%s</cmdline>
  </os>
  <features><acpi/><tcg><tb-cache unit='MiB'>32</tb-cache></tcg></features>
  <cpu mode='custom'><model>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/><target dev='vda' bus='virtio'/></disk>
    %s
    <serial type='file'><source path='%s'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>`, g.Name, uuid, memory, g.Kernel, g.Initrd, cmdline, g.Disk, devices, g.Log)
}

// Boot defines and starts the guest on l and returns once it counts.
func (g Guest) Boot(t testing.TB, l *lv.Libvirt) {
	t.Helper()
	g.start(t, l, g.XML())
	if _, err := WaitCounter(g.Log, 1, 60*time.Second); err != nil {
		t.Fatalf("guest %s: %v", g.Name, err)
	}
}

// start defines the guest's domain from x and starts it.
func (g Guest) start(t testing.TB, l *lv.Libvirt, x string) {
	t.Helper()
	dom, err := l.DomainDefineXML(x)
	if err != nil {
		t.Fatalf("defining %s: %v", g.Name, err)
	}
	if err := l.DomainCreate(dom); err != nil {
		t.Fatalf("starting %s: %v", g.Name, err)
	}
}

var counterLine = regexp.MustCompile(`mitosis-counter boot=([0-9a-f-]+) n=([0-9]+)`)

// Counter is what a serial log shows of the guest's counter.
type Counter struct {
	Boot  string // the boot id the counting guest printed
	First int    // the first value in the log, -1 if none
	Last  int
	Ready bool // the log has the boot message: the guest booted here
}

// ReadCounter reads a guest's serial log.
func ReadCounter(path string) (Counter, error) {
	f, err := os.Open(path)
	if err != nil {
		return Counter{}, err
	}
	defer f.Close()
	c := Counter{First: -1, Last: -1}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.Contains(s.Text(), "mitosis-guest-ready") {
			c.Ready = true
		}
		m := counterLine.FindStringSubmatch(s.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		if c.First < 0 {
			c.First, c.Boot = n, m[1]
		}
		c.Last = n
	}
	return c, s.Err()
}

// WaitCounter polls a serial log until its counter reaches at least n.
func WaitCounter(path string, n int, within time.Duration) (Counter, error) {
	deadline := time.Now().Add(within)
	for {
		c, err := ReadCounter(path)
		if err == nil && c.Last >= n {
			return c, nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(path)
			return c, fmt.Errorf("counter in %s did not reach %d within %s (last %d, err %v); log tail:\n%s", path, n, within, c.Last, err, tail(b, 800))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// MACs returns the MAC addresses of a domain's interfaces.
func MACs(t testing.TB, l *lv.Libvirt, name string) []string {
	t.Helper()
	dom, err := l.DomainLookupByName(name)
	if err != nil {
		t.Fatal(err)
	}
	x, err := l.DomainGetXMLDesc(dom, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range macAddress.FindAllStringSubmatch(x, -1) {
		out = append(out, m[1])
	}
	return out
}

var macAddress = regexp.MustCompile(`<mac address='([0-9a-f:]+)'`)
