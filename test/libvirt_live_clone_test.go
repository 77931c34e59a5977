package test

// A true live clone under QEMU (TCG) through a root libvirt daemon in
// system mode, as on a libvirt host, driven through hypervisor/libvirt:
// the daemon is libvirttest.StartSystem's (its own socket, configuration
// and state, in a mount namespace of its own), so it runs beside the host's
// libvirt and beside hypervisor/libvirt's session-daemon tests.

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/hypervisortest"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/libvirt"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/libvirt/libvirttest"
)

func TestLibvirtLiveCloneSystemDaemon(t *testing.T) {
	const template = "mitosis-system-template"
	start := time.Now()
	d := libvirttest.StartSystem(t)
	g := libvirttest.PrepareGuest(t, d, template)
	raw := d.Connect(t, "qemu:///system")
	g.Boot(t, raw)
	t.Logf("root libvirtd started and template booted, counting, %s after the test began", time.Since(start).Round(time.Millisecond))

	// The guest has a user-mode NIC: no address a host could see.
	c, err := libvirt.New(t.Context(), libvirt.Config{URI: d.QEMUURI(), ImageDir: g.Images, AddressSource: libvirt.AddressNone, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	tmpl, err := c.Lookup(t.Context(), template)
	if err != nil || !tmpl.Running {
		t.Fatalf("template: %+v, %v", tmpl, err)
	}

	// Two live clones of the running template.
	var clones []hypervisor.VM
	for i, op := range []string{"system-live-1", "system-live-2"} {
		before, err := libvirttest.ReadCounter(g.Log)
		if err != nil {
			t.Fatal(err)
		}
		r := hypervisor.CloneRequest{Operation: op, Name: "mitosis-" + op, Template: template, Fence: uint64(10 + i)}
		began := time.Now()
		vm, err := c.Clone(t.Context(), r)
		if err != nil {
			t.Fatalf("%v\nlibvirtd log:\n%s", err, d.Log())
		}
		t.Logf("clone %s: %s (template counter was at %d)", r.Name, time.Since(began).Round(time.Millisecond), before.Last)
		if vm.Name != r.Name || !vm.Running || vm.Operation != op || vm.Fence != r.Fence || vm.Method != libvirt.MethodLiveClone {
			t.Errorf("Clone = %+v", vm)
		}
		// It continues the template's memory: the same boot, counting on
		// from where the template was when it was cloned, not from 0.
		cnt, err := libvirttest.WaitCounter(filepath.Join(g.Images, r.Name+".log"), before.Last+2, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if cnt.Boot != before.Boot || cnt.Ready || cnt.First < before.Last {
			t.Errorf("clone %s counts %d..%d of boot %s (booted here: %v); want boot %s from %d on: memory not preserved",
				r.Name, cnt.First, cnt.Last, cnt.Boot, cnt.Ready, before.Boot, before.Last)
		}
		clones = append(clones, vm)
	}

	// Distinct domains: names, uuids, MACs.
	names := []string{template, clones[0].Name, clones[1].Name}
	ids := []string{tmpl.ID, clones[0].ID, clones[1].ID}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			mi, mj := libvirttest.MACs(t, raw, names[i]), libvirttest.MACs(t, raw, names[j])
			if names[i] == names[j] || ids[i] == ids[j] {
				t.Errorf("%s (%s) and %s (%s) share a name or uuid", names[i], ids[i], names[j], ids[j])
			}
			if len(mi) != 1 || len(mj) != 1 || mi[0] == mj[0] {
				t.Errorf("%s and %s: MACs %v and %v, want one each, distinct", names[i], names[j], mi, mj)
			}
		}
	}

	// The template keeps running and counting.
	if vm, err := c.Lookup(t.Context(), template); err != nil || !vm.Running {
		t.Errorf("template after cloning: %+v, %v", vm, err)
	}
	now, _ := libvirttest.ReadCounter(g.Log)
	if _, err := libvirttest.WaitCounter(g.Log, now.Last+2, 10*time.Second); err != nil {
		t.Errorf("template stopped counting: %v", err)
	}

	// The same operation again makes no third domain.
	again, err := c.Clone(t.Context(), hypervisor.CloneRequest{Operation: "system-live-1", Name: "mitosis-system-live-1", Template: template, Fence: 99})
	if err != nil || again.ID != clones[0].ID || again.Fence != 10 {
		t.Errorf("repeated Clone: %+v, %v; want the first clone, fence 10", again, err)
	}
	if doms, _, err := raw.ConnectListAllDomains(1, 0); err != nil || len(doms) != 3 {
		t.Errorf("%d domains after the repeated Clone (%v); want 3", len(doms), err)
	}

	// Destroy: no domain, overlay, memory image or log left; the template
	// runs on.
	for _, vm := range clones {
		if len(files(t, g.Images, vm.Name, ".qcow2")) == 0 {
			t.Errorf("no overlay of %s in %s", vm.Name, g.Images)
		}
		began := time.Now()
		if err := c.Destroy(t.Context(), vm.Name); err != nil {
			t.Fatal(err)
		}
		t.Logf("destroy %s: %s", vm.Name, time.Since(began).Round(time.Millisecond))
		if _, err := c.Lookup(t.Context(), vm.Name); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("Lookup after Destroy: %v", err)
		}
		if left := files(t, g.Images, vm.Name, ""); len(left) > 0 {
			t.Errorf("files of %s left: %v", vm.Name, left)
		}
	}
	if doms, _, err := raw.ConnectListAllDomains(1, 0); err != nil || len(doms) != 1 {
		t.Errorf("%d domains after destroying the clones (%v); want the template alone", len(doms), err)
	}
	if vm, err := c.Lookup(t.Context(), template); err != nil || !vm.Running {
		t.Errorf("template after destroying its clones: %+v, %v", vm, err)
	}

	// The conformance suite, on the same running template.
	t.Run("Conformance", func(t *testing.T) {
		hypervisortest.Run(t, func(t *testing.T) hypervisortest.Harness {
			return hypervisortest.Harness{Hypervisor: c, Template: template, Timeout: 60 * time.Second}
		})
	})
	for _, e := range files(t, g.Images, "", "") {
		if !strings.HasPrefix(e, template+".") {
			t.Errorf("%s is left in the image directory: only the template's disk chain may be", e)
		}
	}
}

// files lists the entries of dir that are a clone's (NAME.*), or all
// with name "", ending in suffix.
func files(t *testing.T, dir, name, suffix string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if (name == "" || strings.HasPrefix(e.Name(), name+".")) && strings.HasSuffix(e.Name(), suffix) {
			out = append(out, e.Name())
		}
	}
	return out
}
