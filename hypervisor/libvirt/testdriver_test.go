package libvirt

// API-level tests against libvirt's test driver (test:///default) in an
// unprivileged daemon. The test driver keeps domains in memory and never
// opens their files; it has define/create/destroy/undefine, suspend and
// resume, and metadata, but no external memory snapshot and no QEMU save
// image, so a live clone's own steps 1 and 5 run in qemu_test.go. Here a
// domain is made the way a live Clone leaves one (the same XML rewrite,
// then define and start), and everything around the clone steps is
// checked against the real daemon: idempotency, ErrNameTaken, ErrNotFound,
// destroy and its files, look-up, and that a live Clone fails cleanly
// where the driver cannot. A cold clone (clone_mode: cold) runs here in
// full, and passes the conformance suite (TestConformanceTestDriver).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lv "github.com/digitalocean/go-libvirt"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/hypervisortest"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/libvirt/libvirttest"
)

// testTemplate is the running domain test:///default starts with.
const testTemplate = "test"

type testDriver struct {
	c   *Client
	raw *lv.Libvirt // keeps the driver's state alive and checks behind c's back
	dir string      // ImageDir
}

func newTestDriver(t *testing.T) testDriver { return newTestDriverMode(t, "") }

func newTestDriverMode(t *testing.T, mode string) testDriver {
	return newTestDriverConfig(t, Config{CloneMode: mode})
}

// newTestDriverConfig is a client of a new test driver with cfg, whose
// URI, ImageDir and Logger it sets.
func newTestDriverConfig(t *testing.T, cfg Config) testDriver {
	t.Helper()
	d := libvirttest.Start(t, libvirttest.Options{})
	// The test driver resets when its last connection closes: this one
	// stays open for the whole test.
	raw := d.Connect(t, "test:///default")
	dir := t.TempDir()
	cfg.URI, cfg.ImageDir, cfg.Logger = d.URI("test", "/default"), dir, testLogger(t)
	c, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return testDriver{c: c, raw: raw, dir: dir}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func req(op string, fence uint64) hypervisor.CloneRequest {
	return hypervisor.CloneRequest{Operation: op, Name: "mitosis-" + op, Template: testTemplate, Fence: fence}
}

// made defines and starts a domain as Clone leaves one: the template's XML
// through cloneXML, its disk on an overlay in ImageDir.
func (td testDriver) made(t *testing.T, r hypervisor.CloneRequest) lv.Domain {
	t.Helper()
	tmpl, err := td.raw.DomainLookupByName(r.Template)
	if err != nil {
		t.Fatal(err)
	}
	x, err := td.raw.DomainGetXMLDesc(tmpl, 0)
	if err != nil {
		t.Fatal(err)
	}
	overlay := td.c.overlayPath(r.Name, "vda")
	touch(t, overlay)
	def, err := cloneXML(x, identity{
		name: r.Name, uuid: newUUID(),
		disks:   map[string]string{"vda": overlay},
		chardev: td.c.chardevPaths(r.Name),
		meta:    meta{Operation: r.Operation, Fence: r.Fence, Template: r.Template, Method: MethodLiveClone},
	})
	if err != nil {
		t.Fatal(err)
	}
	dom, err := td.raw.DomainDefineXML(def)
	if err != nil {
		t.Fatal(err)
	}
	if err := td.raw.DomainCreate(dom); err != nil {
		t.Fatal(err)
	}
	return dom
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (td testDriver) names(t *testing.T) []string {
	t.Helper()
	doms, _, err := td.raw.ConnectListAllDomains(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range doms {
		out = append(out, d.Name)
	}
	slices.Sort(out)
	return out
}

func (td testDriver) files(t *testing.T) []string {
	t.Helper()
	es, err := os.ReadDir(td.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestTestDriverLookup(t *testing.T) {
	td := newTestDriver(t)
	vm, err := td.c.Lookup(ctx(t), testTemplate)
	if err != nil {
		t.Fatal(err)
	}
	want := hypervisor.VM{Name: testTemplate, ID: "6695eb01-f6a4-8304-79aa-97f2502e193f", Running: true, Host: td.c.host,
		Address: "192.168.122.3"} // the test driver's lease for domain id 1
	if vm != want || vm.Host == "" {
		t.Errorf("Lookup(test) = %+v, want %+v (a domain mitosis did not make: no operation)", vm, want)
	}
	if _, err := td.c.Lookup(ctx(t), "mitosis-nobody"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup of a missing domain: err = %v, want ErrNotFound", err)
	}

	r := req("lookup", 42)
	dom := td.made(t, r)
	vm, err = td.c.Lookup(ctx(t), r.Name)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Operation != "lookup" || vm.Fence != 42 || vm.Method != MethodLiveClone || !vm.Running || vm.ID != uuidString(dom.UUID) {
		t.Errorf("Lookup(clone) = %+v: want the metadata back, running, with the domain's uuid", vm)
	}
	// libvirt itself hands the element back under the namespace.
	s, err := td.raw.DomainGetMetadata(dom, int32(lv.DomainMetadataElement), lv.OptString{Namespace}, 0)
	if err != nil || !strings.Contains(s, "<operation>lookup</operation>") {
		t.Errorf("DomainGetMetadata = %q, %v", s, err)
	}
	if err := td.raw.DomainDestroy(dom); err != nil {
		t.Fatal(err)
	}
	if vm, _ := td.c.Lookup(ctx(t), r.Name); vm.Running || vm.Operation != "lookup" {
		t.Errorf("Lookup of the stopped clone = %+v, want not running, metadata kept", vm)
	}
}

func TestTestDriverCloneReturnsTheCloneOfItsOperation(t *testing.T) {
	td := newTestDriver(t)
	r := req("again", 3)
	dom := td.made(t, r)
	before := td.names(t)

	retry := r
	retry.Fence = 4 // a new leader retrying the step
	vm, err := td.c.Clone(ctx(t), retry)
	if err != nil {
		t.Fatal(err)
	}
	if vm.ID != uuidString(dom.UUID) || vm.Fence != 3 || vm.Operation != "again" || !vm.Running {
		t.Errorf("Clone = %+v: want the clone already made, with the fence it was made with", vm)
	}

	// Found paused: resumed. Found off (a crash between define and
	// restore, and no memory image left): booted.
	if err := td.raw.DomainSuspend(dom); err != nil {
		t.Fatal(err)
	}
	if vm, err := td.c.Clone(ctx(t), r); err != nil || vm.ID != uuidString(dom.UUID) {
		t.Fatalf("Clone of a paused clone: %+v, %v", vm, err)
	}
	if st, _ := state(td.raw, dom); st != lv.DomainRunning {
		t.Errorf("paused clone is %s after Clone, want running", stateName(st))
	}
	if err := td.raw.DomainDestroy(dom); err != nil {
		t.Fatal(err)
	}
	if vm, err := td.c.Clone(ctx(t), r); err != nil || !vm.Running || vm.ID != uuidString(dom.UUID) {
		t.Fatalf("Clone of a clone found off: %+v, %v", vm, err)
	}
	if st, _ := state(td.raw, dom); st != lv.DomainRunning {
		t.Errorf("clone found off is %s after Clone, want running", stateName(st))
	}
	if after := td.names(t); !slices.Equal(before, after) {
		t.Errorf("domains %v became %v: a retried Clone made another", before, after)
	}
}

func TestTestDriverCloneRefusesAnotherOperationsName(t *testing.T) {
	td := newTestDriver(t)
	r := req("mine", 1)
	dom := td.made(t, r)
	other := r
	other.Operation = "theirs"
	if _, err := td.c.Clone(ctx(t), other); !errors.Is(err, hypervisor.ErrNameTaken) {
		t.Fatalf("Clone for another operation: err = %v, want ErrNameTaken", err)
	}
	if vm, err := td.c.Lookup(ctx(t), r.Name); err != nil || vm.ID != uuidString(dom.UUID) || vm.Operation != "mine" || !vm.Running {
		t.Errorf("after the refusal: %+v, %v; want the clone untouched", vm, err)
	}

	// A domain mitosis did not make is never adopted either.
	stranger := hypervisor.CloneRequest{Operation: "op", Name: testTemplate, Template: testTemplate}
	if _, err := td.c.Clone(ctx(t), stranger); !errors.Is(err, hypervisor.ErrNameTaken) {
		t.Errorf("Clone named like a domain without metadata: err = %v, want ErrNameTaken", err)
	}
}

func TestTestDriverCloneOfMissingTemplate(t *testing.T) {
	td := newTestDriver(t)
	before := td.names(t)
	r := req("orphan", 1)
	r.Template = "no-such-template"
	if _, err := td.c.Clone(ctx(t), r); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if after, files := td.names(t), td.files(t); !slices.Equal(before, after) || len(files) > 0 {
		t.Errorf("a failed Clone left domains %v (were %v), files %v", after, before, files)
	}
}

// The test driver has no external memory snapshot: in live mode (the
// default) Clone says so up front with errors.ErrUnsupported, naming the
// driver and clone_mode: cold, and leaves nothing, the template running.
// It never falls back to a cold clone on its own.
func TestTestDriverCloneIsUnsupported(t *testing.T) {
	td := newTestDriver(t)
	before := td.names(t)
	for name, clone := range map[string]func(context.Context, hypervisor.CloneRequest) (hypervisor.VM, error){
		"Clone": td.c.Clone, "InstantClone": td.c.InstantClone,
	} {
		_, err := clone(ctx(t), req("unsupported", 1))
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(strings.ToLower(err.Error()), `"test" driver`) || !strings.Contains(err.Error(), "set clone_mode: cold") {
			t.Errorf("%s on the test driver: err = %v, want errors.ErrUnsupported naming the driver and clone_mode: cold", name, err)
		}
	}
	if after, files := td.names(t), td.files(t); !slices.Equal(before, after) || len(files) > 0 {
		t.Errorf("failed clones left domains %v (were %v), files %v", after, before, files)
	}
	if vm, err := td.c.Lookup(ctx(t), testTemplate); err != nil || !vm.Running {
		t.Errorf("template after the failed clones: %+v, %v", vm, err)
	}
	// Nonsense is refused before anything is asked of libvirt.
	for _, bad := range []hypervisor.CloneRequest{
		{Operation: "x", Name: "../x", Template: testTemplate},
		{Name: "mitosis-x", Template: testTemplate},
		{Operation: "x", Name: "mitosis-x"},
	} {
		if _, err := td.c.Clone(ctx(t), bad); err == nil {
			t.Errorf("Clone(%+v) accepted", bad)
		}
	}
}

func TestTestDriverDestroy(t *testing.T) {
	td := newTestDriver(t)
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Fatalf("qemu-img is missing: %s", libvirttest.InstallHint)
	}
	// Two clones on one frozen image of the template, as two clones of
	// one snapshot would be.
	frozen := filepath.Join(td.dir, "test.vda.0a0b0c0d.qcow2")
	if out, err := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", frozen, "16M").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	a, b := req("a", 1), req("b", 1)
	for _, r := range []hypervisor.CloneRequest{a, b} {
		td.made(t, r)
		overlay := td.c.overlayPath(r.Name, "vda")
		if err := td.c.createOverlay(ctx(t), overlay, frozen, "qcow2"); err != nil {
			t.Fatal(err)
		}
	}
	touch(t, td.c.savePath(a.Name))                               // a memory image not yet dropped
	touch(t, filepath.Join(td.dir, a.Name+".log"))                // its serial log
	touch(t, filepath.Join(td.dir, a.Name+"-2.log"))              // another name's file
	touch(t, filepath.Join(td.dir, a.Name+".vda.b16b00b5.qcow2")) // a's own top, had it been cloned

	if err := td.c.Destroy(ctx(t), a.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := td.c.Lookup(ctx(t), a.Name); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("after Destroy, Lookup err = %v, want ErrNotFound", err)
	}
	want := []string{"mitosis-a-2.log", "mitosis-b.vda.qcow2", "test.vda.0a0b0c0d.qcow2"}
	if got := td.files(t); !slices.Equal(got, want) {
		t.Errorf("files after destroying %s: %v, want %v (its own gone; b's and the frozen image b runs on kept)", a.Name, got, want)
	}
	if err := td.c.Destroy(ctx(t), a.Name); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	if err := td.c.Destroy(ctx(t), "mitosis-never-was"); err != nil {
		t.Errorf("Destroy of a domain that never existed: %v", err)
	}

	// The last clone on the frozen image takes it along; the template
	// keeps running, its own disk (outside ImageDir) untouched.
	if err := td.c.Destroy(ctx(t), b.Name); err != nil {
		t.Fatal(err)
	}
	if got := td.files(t); !slices.Equal(got, []string{"mitosis-a-2.log"}) {
		t.Errorf("files after destroying both: %v", got)
	}
	if vm, err := td.c.Lookup(ctx(t), testTemplate); err != nil || !vm.Running {
		t.Errorf("template after destroying its clones: %+v, %v", vm, err)
	}
	if got := td.names(t); !slices.Equal(got, []string{testTemplate}) {
		t.Errorf("domains left: %v", got)
	}
}

func TestTestDriverDestroyTransientAndStopped(t *testing.T) {
	td := newTestDriver(t)
	// A transient domain is gone once destroyed; undefine must not fail.
	tmpl, _ := td.raw.DomainLookupByName(testTemplate)
	x, _ := td.raw.DomainGetXMLDesc(tmpl, 0)
	def, err := cloneXML(x, identity{name: "transient", uuid: newUUID(), chardev: td.c.chardevPaths("transient"), meta: meta{Operation: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := td.raw.DomainCreateXML(def, 0); err != nil {
		t.Fatal(err)
	}
	// A defined domain that is not running.
	r := req("stopped", 1)
	dom := td.made(t, r)
	if err := td.raw.DomainDestroy(dom); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"transient", r.Name} {
		if err := td.c.Destroy(ctx(t), name); err != nil {
			t.Errorf("Destroy(%s): %v", name, err)
		}
	}
	if got := td.names(t); !slices.Equal(got, []string{testTemplate}) {
		t.Errorf("domains left: %v", got)
	}
}

func TestTestDriverReconnects(t *testing.T) {
	td := newTestDriver(t)
	td.c.smu.Lock()
	_ = td.c.s.l.Disconnect()
	td.c.smu.Unlock()
	if vm, err := td.c.Lookup(ctx(t), testTemplate); err != nil || !vm.Running {
		t.Fatalf("Lookup after the connection dropped: %+v, %v", vm, err)
	}
}

func TestConformanceTestDriver(t *testing.T) {
	td := newTestDriverMode(t, CloneModeCold)
	hypervisortest.Run(t, func(t *testing.T) hypervisortest.Harness {
		return hypervisortest.Harness{Hypervisor: td.c, Template: testTemplate}
	})
	if got := td.names(t); !slices.Equal(got, []string{testTemplate}) {
		t.Errorf("domains left after the suite: %v", got)
	}
	if files := td.files(t); len(files) > 0 {
		t.Errorf("files left after the suite: %v", files)
	}
}

// A running VM reports its address from the source configured: the
// test driver leases each domain on its default network an address of
// 192.168.122.0/24 after its id (192.168.122.3 for the template, id 1;
// 192.168.122.23 for id 2, the first clone). With none, VMs report no
// address.
func TestTheAddressComesFromTheSourceConfigured(t *testing.T) {
	for _, c := range []struct{ source, want string }{
		{"", "192.168.122.23"},
		{AddressLease, "192.168.122.23"},
		{AddressNone, ""},
	} {
		t.Run("source="+c.source, func(t *testing.T) {
			td := newTestDriverConfig(t, Config{CloneMode: CloneModeCold, AddressSource: c.source, AddressWait: new(time.Second)})
			vm, err := td.c.Clone(ctx(t), req("addr", 1))
			if err != nil {
				t.Fatal(err)
			}
			found, err := td.c.Lookup(ctx(t), vm.Name)
			if err != nil {
				t.Fatal(err)
			}
			if vm.Address != c.want || found.Address != c.want {
				t.Errorf("clone at %q, looked up at %q; want %q", vm.Address, found.Address, c.want)
			}
			if err := td.c.Destroy(ctx(t), vm.Name); err != nil {
				t.Fatal(err)
			}
		})
	}
	_, err := New(t.Context(), Config{URI: "test:///default", ImageDir: t.TempDir(), AddressSource: "dns"})
	if err == nil || !strings.Contains(err.Error(), `address_source "dns"`) {
		t.Errorf("New with address_source dns: err = %v, want one naming address_source", err)
	}
}

func TestPickAddressPrefersAReachableIPv4(t *testing.T) {
	iface := func(addrs ...string) lv.DomainInterface {
		var a []lv.DomainIPAddr
		for _, s := range addrs {
			a = append(a, lv.DomainIPAddr{Addr: s})
		}
		return lv.DomainInterface{Name: "vnet0", Addrs: a}
	}
	for _, c := range []struct {
		ifaces []lv.DomainInterface
		want   string
	}{
		{[]lv.DomainInterface{iface("127.0.0.1"), iface("fe80::1", "2001:db8::7", "10.0.0.7")}, "10.0.0.7"},
		{[]lv.DomainInterface{iface("fe80::1", "2001:db8::7")}, "2001:db8::7"},
		{[]lv.DomainInterface{iface("169.254.1.1", "::1", "garbage")}, ""},
		{nil, ""},
	} {
		if got := pickAddress(c.ifaces); got != c.want {
			t.Errorf("pickAddress(%+v) = %q, want %q", c.ifaces, got, c.want)
		}
	}
}

func TestCloneModeIsChecked(t *testing.T) {
	_, err := New(t.Context(), Config{URI: "test:///default", ImageDir: t.TempDir(), CloneMode: "warm"})
	if err == nil || !strings.Contains(err.Error(), "clone_mode") || !strings.Contains(err.Error(), `"warm"`) {
		t.Errorf("New with clone_mode warm: err = %v, want one naming clone_mode", err)
	}
}

func TestTestDriverColdClone(t *testing.T) {
	td := newTestDriverMode(t, CloneModeCold)
	r := req("cold", 9)
	vm, err := td.c.Clone(ctx(t), r)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Method != MethodColdClone || vm.Operation != "cold" || vm.Fence != 9 || !vm.Running {
		t.Errorf("Clone = %+v, want a running cold clone with its metadata", vm)
	}
	if got, err := td.c.Lookup(ctx(t), r.Name); err != nil || got != vm {
		t.Errorf("Lookup = %+v, %v; want %+v", got, err, vm)
	}
	// The clone is the template's definition under its own identity.
	dom, err := td.raw.DomainLookupByName(r.Name)
	if err != nil {
		t.Fatal(err)
	}
	x, err := td.raw.DomainGetXMLDesc(dom, 0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDomain(x)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Devices.Disks) == 0 || d.Devices.Disks[0].Source.File != td.c.overlayPath(r.Name, d.Devices.Disks[0].Target.Dev) {
		t.Errorf("clone's disks %+v, want its own overlay", d.Devices.Disks)
	}
	if tm, cm := libvirttest.MACs(t, td.raw, testTemplate), libvirttest.MACs(t, td.raw, r.Name); len(cm) != len(tm) || len(cm) == 0 || slices.Equal(tm, cm) {
		t.Errorf("clone's MACs %v, template's %v: want new ones", cm, tm)
	}
	if files := td.files(t); len(files) > 0 {
		t.Errorf("the test driver opens no disk, yet files were made: %v", files)
	}

	// InstantClone never falls back to a cold clone, and never passes
	// the cold clone of its operation off as an instant one.
	ir := req("instant", 1)
	if _, err := td.c.InstantClone(ctx(t), ir); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("InstantClone in cold mode on the test driver: err = %v, want errors.ErrUnsupported", err)
	}
	if _, err := td.c.Lookup(ctx(t), ir.Name); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("the unsupported InstantClone left %s (Lookup err = %v)", ir.Name, err)
	}
	if _, err := td.c.InstantClone(ctx(t), r); err == nil || !strings.Contains(err.Error(), "cold clone") {
		t.Errorf("InstantClone of the operation of a cold clone: err = %v, want a refusal", err)
	}

	if err := td.c.Destroy(ctx(t), r.Name); err != nil {
		t.Fatal(err)
	}
	if got := td.names(t); !slices.Equal(got, []string{testTemplate}) {
		t.Errorf("domains left: %v", got)
	}
}

// A cold clone defined but not yet started (the process died in between)
// is found by the retried Clone, which starts it rather than make another.
func TestTestDriverColdCloneDefinedNotStarted(t *testing.T) {
	td := newTestDriverMode(t, CloneModeCold)
	r := req("crashed", 2)
	td.c.crashBeforeRestore = true
	if _, err := td.c.Clone(ctx(t), r); !errors.Is(err, errCrashed) {
		t.Fatalf("Clone with a crash before the start: err = %v", err)
	}
	td.c.crashBeforeRestore = false
	off, err := td.c.Lookup(ctx(t), r.Name)
	if err != nil || off.Running || off.Method != MethodColdClone || off.Operation != "crashed" {
		t.Fatalf("after the crash: %+v, %v; want the clone defined, not running", off, err)
	}
	before := td.names(t)
	retry := r
	retry.Fence = 3
	vm, err := td.c.Clone(ctx(t), retry)
	if err != nil {
		t.Fatal(err)
	}
	if vm.ID != off.ID || !vm.Running || vm.Fence != 2 || vm.Method != MethodColdClone {
		t.Errorf("retried Clone = %+v, want %s started, with the fence it was made with", vm, off.ID)
	}
	if after := td.names(t); !slices.Equal(before, after) {
		t.Errorf("domains %v became %v: the retried Clone made another", before, after)
	}
}

// BenchmarkCloneDestroyTestDriver is a cold clone and its destroy on the
// test driver: read the template's XML, rewrite it, define, start, read
// back; then destroy and undefine. The live clone is timed on QEMU
// (BenchmarkLiveCloneDestroy).
func BenchmarkCloneDestroyTestDriver(b *testing.B) {
	d := libvirttest.Start(b, libvirttest.Options{})
	_ = d.Connect(b, "test:///default") // keeps the driver's state
	c, err := New(b.Context(), Config{URI: d.URI("test", "/default"), ImageDir: b.TempDir(), CloneMode: CloneModeCold, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for i := 0; b.Loop(); i++ {
		r := req(fmt.Sprintf("bench-%d", i), 1)
		if _, err := c.Clone(b.Context(), r); err != nil {
			b.Fatal(err)
		}
		if err := c.Destroy(b.Context(), r.Name); err != nil {
			b.Fatal(err)
		}
	}
}
