package libvirt

// A true live clone under QEMU (TCG: no KVM needed) through an
// unprivileged session daemon (qemu:///session as nobody): isolated from
// the host's libvirt and from other tests, nothing to set up as root,
// and /dev/kvm's permissions do not matter (an inaccessible /dev/kvm is
// what a session daemon expects; a system daemon that can open it but
// not use it re-probes QEMU on every call). The daemon and the guest are
// libvirttest's; test/libvirt_live_clone_test.go runs the same live clone
// through a root daemon (qemu:///system).

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	lv "github.com/digitalocean/go-libvirt"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/hypervisortest"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/libvirt/libvirttest"
)

const qemuTemplate = "mitosis-template"

type qemuWorld struct {
	c      *Client
	raw    *lv.Libvirt
	guest  libvirttest.Guest
	images string // ImageDir
	uri    string // Config.URI
}

func (w qemuWorld) templateLog() string { return w.guest.Log }
func (w qemuWorld) cloneLog(name string) string {
	return filepath.Join(w.images, name+".log")
}

// startQEMU starts a session daemon and boots the template guest,
// returning once the guest counts.
func startQEMU(t testing.TB) qemuWorld {
	t.Helper()
	start := time.Now()
	libvirttest.RequireQEMU(t)
	d := libvirttest.Start(t, libvirttest.Options{CacheHome: filepath.Join(libvirttest.CacheDir(t), "libvirt-cache")})
	w := qemuWorld{guest: libvirttest.PrepareGuest(t, d, qemuTemplate)}
	w.images = w.guest.Images
	w.raw = d.Connect(t, "qemu:///session")
	w.guest.Boot(t, w.raw)
	log := testLogger(t)
	if _, ok := t.(*testing.B); ok {
		log = slog.New(slog.DiscardHandler)
	}
	var err error
	w.uri = d.QEMUURI()
	// The guest has a user-mode NIC: no address a host could see.
	w.c, err = New(t.Context(), Config{URI: w.uri, ImageDir: w.images, AddressSource: AddressNone, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.c.Close() })
	t.Logf("template booted and counting %s after the test began", time.Since(start).Round(time.Millisecond))
	return w
}

func (w qemuWorld) macs(t *testing.T, name string) []string {
	t.Helper()
	return libvirttest.MACs(t, w.raw, name)
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
		before, err := libvirttest.ReadCounter(w.templateLog())
		if err != nil {
			t.Fatal(err)
		}
		r := hypervisor.CloneRequest{Operation: op, Name: "mitosis-" + op, Template: qemuTemplate, Fence: uint64(10 + i)}
		start := time.Now()
		vm, err := w.c.Clone(ctx(t), r)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("clone %s: %s (template counter was at %d)", r.Name, time.Since(start).Round(time.Millisecond), before.Last)
		if vm.Name != r.Name || !vm.Running || vm.Operation != op || vm.Fence != r.Fence || vm.Method != MethodLiveClone {
			t.Errorf("Clone = %+v", vm)
		}
		// It continues the template's memory: same boot, counting on from
		// where the template was when it was cloned, not from 0.
		c, err := libvirttest.WaitCounter(w.cloneLog(r.Name), before.Last+2, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if c.Boot != before.Boot || c.Ready || c.First < before.Last {
			t.Errorf("clone %s counts %d..%d of boot %s (booted here: %v); want boot %s from %d on: memory not preserved",
				r.Name, c.First, c.Last, c.Boot, c.Ready, before.Boot, before.Last)
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
	now, _ := libvirttest.ReadCounter(w.templateLog())
	if _, err := libvirttest.WaitCounter(w.templateLog(), now.Last+2, 10*time.Second); err != nil {
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
	before, _ := libvirttest.ReadCounter(w.templateLog())
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
	if c, err := libvirttest.WaitCounter(w.cloneLog(crash.Name), before.Last+2, 20*time.Second); err != nil {
		t.Error(err)
	} else if c.Boot != before.Boot || c.Ready || c.First < before.Last {
		t.Errorf("clone restored after the crash counts %d.. of boot %s (booted: %v); want boot %s from %d on", c.First, c.Boot, c.Ready, before.Boot, before.Last)
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

	// clone_mode: cold on QEMU: the clone boots afresh (no memory) from
	// an overlay on the template's frozen disk, says so in its metadata,
	// and Destroy takes its files along; the template counts on.
	cold, err := New(t.Context(), Config{URI: w.uri, ImageDir: w.images, CloneMode: CloneModeCold, AddressSource: AddressNone, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer cold.Close()
	cr := hypervisor.CloneRequest{Operation: "cold", Name: "mitosis-cold", Template: qemuTemplate, Fence: 8}
	tc, _ := libvirttest.ReadCounter(w.templateLog())
	cvm, err := cold.Clone(ctx(t), cr)
	if err != nil {
		t.Fatal(err)
	}
	if cvm.Method != MethodColdClone || !cvm.Running || cvm.Operation != "cold" || cvm.Fence != 8 {
		t.Errorf("cold Clone = %+v", cvm)
	}
	if got, err := w.c.Lookup(ctx(t), cr.Name); err != nil || got.Method != MethodColdClone {
		t.Errorf("Lookup of the cold clone: %+v, %v; want method %s", got, err, MethodColdClone)
	}
	if c, err := libvirttest.WaitCounter(w.cloneLog(cr.Name), 0, 60*time.Second); err != nil {
		t.Error(err)
	} else if !c.Ready || c.Boot == tc.Boot {
		t.Errorf("cold clone counts %d.. of boot %s (booted here: %v); want a boot of its own (template's is %s)", c.First, c.Boot, c.Ready, tc.Boot)
	}
	if _, err := os.Stat(w.c.overlayPath(cr.Name, "vda")); err != nil {
		t.Errorf("cold clone's overlay: %v", err)
	}
	if err := cold.Destroy(ctx(t), cr.Name); err != nil {
		t.Fatal(err)
	}
	if files := w.c.namedFiles(cr.Name); len(files) > 0 {
		t.Errorf("files of the cold clone left: %v", files)
	}
	now, _ = libvirttest.ReadCounter(w.templateLog())
	if _, err := libvirttest.WaitCounter(w.templateLog(), now.Last+2, 10*time.Second); err != nil {
		t.Errorf("template stopped counting after the cold clone: %v", err)
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
