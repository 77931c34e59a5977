package libvirt

// A true live clone under QEMU (TCG: no KVM needed) through an
// unprivileged session daemon (qemu:///session as nobody): isolated from
// the host's libvirt and from other tests, nothing to set up as root,
// and /dev/kvm's permissions do not matter (an inaccessible /dev/kvm is
// what a session daemon expects; a system daemon that can open it but
// not use it re-probes QEMU on every call). The Client does the same
// against qemu:///system.

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	lv "github.com/digitalocean/go-libvirt"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/hypervisortest"
)

const qemuTemplate = "mitosis-template"

type qemuWorld struct {
	c      *Client
	raw    *lv.Libvirt
	dir    string // the daemon's: kernel, initrd, base image, template log
	images string // ImageDir
}

func (w qemuWorld) templateLog() string { return filepath.Join(w.dir, "template.log") }
func (w qemuWorld) cloneLog(name string) string {
	return filepath.Join(w.images, name+".log")
}

// startQEMU starts a session daemon and boots the template guest,
// returning once the guest counts.
func startQEMU(t testing.TB) qemuWorld {
	t.Helper()
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is missing: %s", bin, installHint)
		}
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so"); err != nil {
		t.Fatalf("libvirt's QEMU driver is missing: %s", installHint)
	}
	start := time.Now()
	kernel := guestKernel(t)
	d := startDaemonOpts(t, daemonOpts{cacheHome: filepath.Join(cacheDir(t), "libvirt-cache")})
	w := qemuWorld{dir: d.Dir, images: filepath.Join(d.Dir, "images")}
	if err := os.Mkdir(w.images, 0o755); err != nil {
		t.Fatal(err)
	}
	d.chown(t, w.images)
	// The daemon's user reads the guest's files from its own directory.
	guestKernelCopy := filepath.Join(d.Dir, "vmlinuz")
	b, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(guestKernelCopy, b, 0o644); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(d.Dir, "initrd")
	guestInitrd(t, initrd)
	base := filepath.Join(d.Dir, "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	for _, p := range []string{guestKernelCopy, initrd, base} {
		d.chown(t, p)
	}

	w.raw = d.connect(t, "qemu:///session")
	dom, err := w.raw.DomainDefineXML(templateXML(guestKernelCopy, initrd, base, w.templateLog()))
	if err != nil {
		t.Fatalf("defining the template: %v", err)
	}
	if err := w.raw.DomainCreate(dom); err != nil {
		t.Fatalf("starting the template: %v", err)
	}
	log := testLogger(t)
	if _, ok := t.(*testing.B); ok {
		log = slog.New(slog.DiscardHandler)
	}
	w.c, err = New(t.Context(), Config{URI: d.URI("qemu", "/session"), ImageDir: w.images, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.c.Close() })
	if _, err := waitCounter(w.templateLog(), 1, 60*time.Second); err != nil {
		t.Fatalf("template guest: %v", err)
	}
	t.Logf("template booted and counting %s after the test began", time.Since(start).Round(time.Millisecond))
	return w
}

func templateXML(kernel, initrd, disk, log string) string {
	return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <features><acpi/><tcg><tb-cache unit='MiB'>32</tb-cache></tcg></features>
  <cpu mode='custom'><model>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/><target dev='vda' bus='virtio'/></disk>
    <interface type='user'><model type='virtio'/></interface>
    <serial type='file'><source path='%s'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>`, qemuTemplate, kernel, initrd, disk, log)
}

var counterLine = regexp.MustCompile(`mitosis-counter boot=([0-9a-f-]+) n=([0-9]+)`)

type counter struct {
	boot  string
	first int // the first value in the log
	last  int
	ready bool // the log has the boot message: the guest booted here
}

func readCounter(path string) (counter, error) {
	f, err := os.Open(path)
	if err != nil {
		return counter{}, err
	}
	defer f.Close()
	c := counter{first: -1, last: -1}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.Contains(s.Text(), "mitosis-guest-ready") {
			c.ready = true
		}
		m := counterLine.FindStringSubmatch(s.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		if c.first < 0 {
			c.first, c.boot = n, m[1]
		}
		c.last = n
	}
	return c, s.Err()
}

// waitCounter polls a serial log until its counter reaches at least n.
func waitCounter(path string, n int, within time.Duration) (counter, error) {
	deadline := time.Now().Add(within)
	for {
		c, err := readCounter(path)
		if err == nil && c.last >= n {
			return c, nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(path)
			return c, fmt.Errorf("counter in %s did not reach %d within %s (last %d, err %v); log tail:\n%s", path, n, within, c.last, err, tail(b, 800))
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

func (w qemuWorld) macs(t *testing.T, name string) []string {
	t.Helper()
	dom, err := w.raw.DomainLookupByName(name)
	if err != nil {
		t.Fatal(err)
	}
	x, err := w.raw.DomainGetXMLDesc(dom, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`<mac address='([0-9a-f:]+)'`).FindAllStringSubmatch(x, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestLiveCloneQEMU(t *testing.T) {
	w := startQEMU(t)
	tmpl, err := w.c.Lookup(ctx(t), qemuTemplate)
	if err != nil {
		t.Fatal(err)
	}
	tmplMACs := w.macs(t, qemuTemplate)

	// Two live clones of the running template.
	var clones []hypervisor.VM
	for i, op := range []string{"live-1", "live-2"} {
		before, err := readCounter(w.templateLog())
		if err != nil {
			t.Fatal(err)
		}
		r := hypervisor.CloneRequest{Operation: op, Name: "mitosis-" + op, Template: qemuTemplate, Fence: uint64(10 + i)}
		start := time.Now()
		vm, err := w.c.Clone(ctx(t), r)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("clone %s: %s (template counter was at %d)", r.Name, time.Since(start).Round(time.Millisecond), before.last)
		if vm.Name != r.Name || !vm.Running || vm.Operation != op || vm.Fence != r.Fence || vm.Method != MethodLiveClone {
			t.Errorf("Clone = %+v", vm)
		}
		// It continues the template's memory: same boot, counting on from
		// where the template was when it was cloned, not from 0.
		c, err := waitCounter(w.cloneLog(r.Name), before.last+2, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if c.boot != before.boot || c.ready || c.first < before.last {
			t.Errorf("clone %s counts %d..%d of boot %s (booted here: %v); want boot %s from %d on: memory not preserved",
				r.Name, c.first, c.last, c.boot, c.ready, before.boot, before.last)
		}
		clones = append(clones, vm)
	}

	// Distinct domains: names, uuids, MACs.
	ids := []string{tmpl.ID, clones[0].ID, clones[1].ID}
	macs := [][]string{tmplMACs, w.macs(t, clones[0].Name), w.macs(t, clones[1].Name)}
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if ids[i] == ids[j] {
				t.Errorf("domains %d and %d share uuid %s", i, j, ids[i])
			}
			if len(macs[i]) != 1 || len(macs[j]) != 1 || macs[i][0] == macs[j][0] {
				t.Errorf("domains %d and %d: MACs %v and %v, want one each, distinct", i, j, macs[i], macs[j])
			}
		}
	}

	// The template's persistent definition follows it onto its new top:
	// were it booted again from the frozen image, it would write under its
	// clones' feet.
	tdom, _ := w.raw.DomainLookupByName(qemuTemplate)
	live, _ := w.raw.DomainGetXMLDesc(tdom, 0)
	inactive, _ := w.raw.DomainGetXMLDesc(tdom, lv.DomainXMLInactive)
	ld, _ := parseDomain(live)
	id, _ := parseDomain(inactive)
	if len(ld.Devices.Disks) != 1 || len(id.Devices.Disks) != 1 || ld.Devices.Disks[0].Source.File != id.Devices.Disks[0].Source.File ||
		!inDir(w.images, ld.Devices.Disks[0].Source.File) {
		t.Errorf("template runs on %+v but is defined on %+v; want both on its newest top in the image directory", ld.Devices.Disks, id.Devices.Disks)
	}

	// The template keeps running and counting.
	now, _ := readCounter(w.templateLog())
	if _, err := waitCounter(w.templateLog(), now.last+2, 10*time.Second); err != nil {
		t.Errorf("template stopped counting: %v", err)
	}

	// The same operation again makes no third domain.
	doms, _, _ := w.raw.ConnectListAllDomains(1, 0)
	again, err := w.c.Clone(ctx(t), hypervisor.CloneRequest{Operation: "live-1", Name: "mitosis-live-1", Template: qemuTemplate, Fence: 99})
	if err != nil || again.ID != clones[0].ID || again.Fence != 10 {
		t.Errorf("repeated Clone: %+v, %v; want the first clone, fence 10", again, err)
	}
	if after, _, _ := w.raw.ConnectListAllDomains(1, 0); len(after) != len(doms) || len(after) != 3 {
		t.Errorf("%d domains after the repeated Clone, were %d; want 3", len(after), len(doms))
	}

	// A Clone that died between define and restore leaves a defined,
	// stopped clone and its memory image; the retry restores the image,
	// so the clone still continues the template's memory.
	crash := hypervisor.CloneRequest{Operation: "crash", Name: "mitosis-crash", Template: qemuTemplate, Fence: 5}
	before, _ := readCounter(w.templateLog())
	w.c.crashBeforeRestore = true
	_, err = w.c.Clone(ctx(t), crash)
	w.c.crashBeforeRestore = false
	if !errors.Is(err, errCrashed) {
		t.Fatalf("Clone with a crash before restore: %v", err)
	}
	if vm, err := w.c.Lookup(ctx(t), crash.Name); err != nil || vm.Running || vm.Operation != "crash" {
		t.Fatalf("after the crash: %+v, %v; want a stopped clone of operation crash", vm, err)
	}
	vm, err := w.c.Clone(ctx(t), crash)
	if err != nil || !vm.Running || vm.Fence != 5 {
		t.Fatalf("Clone retried after the crash: %+v, %v", vm, err)
	}
	if c, err := waitCounter(w.cloneLog(crash.Name), before.last+2, 20*time.Second); err != nil {
		t.Error(err)
	} else if c.boot != before.boot || c.ready || c.first < before.last {
		t.Errorf("clone restored after the crash counts %d.. of boot %s (booted: %v); want boot %s from %d on", c.first, c.boot, c.ready, before.boot, before.last)
	}
	if err := w.c.Destroy(ctx(t), crash.Name); err != nil {
		t.Fatal(err)
	}

	// The memory images are gone once the clones run.
	for _, vm := range clones {
		if _, err := os.Stat(w.c.savePath(vm.Name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("memory image of running %s still there (%v)", vm.Name, err)
		}
	}

	// Destroy: no domain, overlay, memory image or log left; the other
	// clone and the template run on.
	for i, vm := range clones {
		overlay := w.c.overlayPath(vm.Name, "vda")
		if _, err := os.Stat(overlay); err != nil {
			t.Fatalf("overlay of %s: %v", vm.Name, err)
		}
		start := time.Now()
		if err := w.c.Destroy(ctx(t), vm.Name); err != nil {
			t.Fatal(err)
		}
		t.Logf("destroy %s: %s", vm.Name, time.Since(start).Round(time.Millisecond))
		if _, err := w.c.Lookup(ctx(t), vm.Name); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("Lookup after Destroy: %v", err)
		}
		if files := w.c.namedFiles(vm.Name); len(files) > 0 {
			t.Errorf("files of %s left: %v", vm.Name, files)
		}
		if i == 0 {
			if got, err := w.c.Lookup(ctx(t), clones[1].Name); err != nil || !got.Running {
				t.Errorf("other clone after destroying the first: %+v, %v", got, err)
			}
		}
		if err := w.c.Destroy(ctx(t), vm.Name); err != nil {
			t.Errorf("second Destroy: %v", err)
		}
	}
	if got, err := w.c.Lookup(ctx(t), qemuTemplate); err != nil || !got.Running {
		t.Errorf("template after destroying its clones: %+v, %v", got, err)
	}
	w.checkOnlyTemplateFiles(t)

	// The conformance suite, on the same running template.
	t.Run("Conformance", func(t *testing.T) {
		hypervisortest.Run(t, func(t *testing.T) hypervisortest.Harness {
			return hypervisortest.Harness{Hypervisor: w.c, Template: qemuTemplate, Timeout: 60 * time.Second}
		})
	})
	w.checkOnlyTemplateFiles(t)
}

// checkOnlyTemplateFiles fails if ImageDir holds anything but the
// template's disk chain: every clone's files went with it.
func (w qemuWorld) checkOnlyTemplateFiles(t *testing.T) {
	t.Helper()
	dom, err := w.raw.DomainLookupByName(qemuTemplate)
	if err != nil {
		t.Fatal(err)
	}
	x, err := w.raw.DomainGetXMLDesc(dom, 0)
	if err != nil {
		t.Fatal(err)
	}
	chain := w.c.diskFiles(x)
	es, _ := os.ReadDir(w.images)
	for _, e := range es {
		if p := filepath.Join(w.images, e.Name()); !slices.Contains(chain, p) {
			t.Errorf("%s is left in the image directory; the template's chain is %v", e.Name(), chain)
		}
	}
}

// BenchmarkLiveCloneDestroy is one live clone + destroy cycle of a
// running 128 MiB TCG guest (after a ~5 s boot that is not timed).
func BenchmarkLiveCloneDestroy(b *testing.B) {
	w := startQEMU(b)
	for i := 0; b.Loop(); i++ {
		r := hypervisor.CloneRequest{Operation: fmt.Sprintf("bench-%d", i), Template: qemuTemplate, Fence: 1}
		r.Name = "mitosis-" + r.Operation
		if _, err := w.c.Clone(b.Context(), r); err != nil {
			b.Fatal(err)
		}
		if err := w.c.Destroy(b.Context(), r.Name); err != nil {
			b.Fatal(err)
		}
	}
}
