package libvirt

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The guest of the QEMU tests: a Debian kernel and an initramfs of
// busybox-static whose init keeps a counter in shell memory and prints
// it on the serial console. A clone that continues its template's memory
// prints the template's boot id and goes on counting from where the
// template was; a clone that booted would print a new boot id from 0.
//
// The kernel comes from one exact Debian package (apt-get download, not
// installed; a glob over linux-image-* would fetch every version) and is
// kept in the cache directory, so only the first run downloads it.
const kernelPackage = "linux-image-6.1.0-56-amd64"

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

// cacheDir is where the kernel (and libvirt's cache of QEMU's
// capabilities) are kept between runs: $XDG_CACHE_HOME/mitosis-test, else
// /var/cache/mitosis-test for root (whose home the test daemon's user
// cannot enter), else ~/.cache/mitosis-test.
func cacheDir(t testing.TB) string {
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

// guestKernel returns the cached kernel, downloading it the first time.
func guestKernel(t testing.TB) string {
	t.Helper()
	dir := cacheDir(t)
	path := filepath.Join(dir, "vmlinuz-"+strings.TrimPrefix(kernelPackage, "linux-image-"))
	if _, err := os.Stat(path); err == nil {
		return path
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
	dl := exec.Command("apt-get", "download", kernelPackage)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download %s: %v\n%s\n(if Debian has dropped this exact version, set kernelPackage to what `apt-cache depends linux-image-amd64` names)", kernelPackage, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, kernelPackage+"_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download %s left %v", kernelPackage, debs)
	}
	fs := exec.Command("dpkg-deb", "--fsys-tarfile", debs[0])
	var stderr bytes.Buffer
	fs.Stderr = &stderr
	out, err := fs.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Start(); err != nil {
		t.Fatal(err)
	}
	found := false
	tr := tar.NewReader(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", debs[0], err)
		}
		if !strings.HasPrefix(h.Name, "./boot/vmlinuz-") {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
			t.Fatal(err)
		}
		found = true
	}
	_, _ = io.Copy(io.Discard, out)
	if err := fs.Wait(); err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile: %v: %s", err, stderr.String())
	}
	if !found {
		t.Fatalf("%s has no /boot/vmlinuz-*", debs[0])
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	return path
}

// guestInitrd writes the initramfs (an uncompressed newc cpio, which
// the kernel takes as is) to path.
func guestInitrd(t testing.TB, path string) {
	t.Helper()
	const busybox = "/bin/busybox"
	f, err := elf.Open(busybox)
	if err != nil {
		t.Fatalf("%s: %v; install busybox-static: %s", busybox, err, installHint)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			f.Close()
			t.Fatalf("%s is dynamically linked; the guest needs busybox-static: %s", busybox, installHint)
		}
	}
	f.Close()
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
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
