package vsphere

import (
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/hypervisortest"
	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// The conformance runs share one vcsim each (its start is most of a
// case's time); the suite's operation ids keep the cases apart.

func TestConformanceLinkedCloneFallback(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	hypervisortest.Run(t, func(t *testing.T) hypervisortest.Harness {
		return hypervisortest.Harness{Hypervisor: c, Template: s.Template}
	})
}

func TestConformanceInstantClone(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	s.AddInstantClone()
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	hypervisortest.Run(t, func(t *testing.T) hypervisortest.Harness {
		return hypervisortest.Harness{Hypervisor: c, Template: s.Template}
	})
	if len(s.Instants()) == 0 {
		t.Error("the suite made no Instant Clone")
	}
}

func req(op string, template string, fence uint64) hypervisor.CloneRequest {
	return hypervisor.CloneRequest{Operation: op, Name: "mitosis-" + op, Template: template, Fence: fence}
}

// extraConfig reads a VM's extraConfig as a map.
func extraConfig(t *testing.T, c *Client, id string) map[string]string {
	t.Helper()
	var o mo.VirtualMachine
	if err := object.NewVirtualMachine(c.vc, vmRef(id)).Properties(t.Context(), vmRef(id), []string{"config.extraConfig"}, &o); err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string)
	for _, b := range o.Config.ExtraConfig {
		ov := b.GetOptionValue()
		s, _ := ov.Value.(string)
		m[ov.Key] = s
	}
	return m
}

func TestFallbackWhenServerLacksInstantClone(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	var logs testenv.Buffer
	c := newClient(t, s.Config(t, debugLogger(&logs)))
	soap := recordSOAP(c)

	vm, err := c.Clone(t.Context(), req("op1", s.Template, 9))
	if err != nil {
		t.Fatal(err)
	}
	if vm.Method != MethodLinkedClone || !vm.Running {
		t.Errorf("clone = %+v, want a running linked clone", vm)
	}
	ec := extraConfig(t, c, vm.ID)
	for k, want := range map[string]string{KeyOperation: "op1", KeyFence: "9", KeyNode: "mitosis-op1", KeyTemplate: s.Template, KeyMethod: MethodLinkedClone} {
		if ec[k] != want {
			t.Errorf("extraConfig[%s] = %q, want %q", k, ec[k], want)
		}
	}
	// It asked for Instant Clone first, then snapshotted with memory and
	// cloned from the snapshot as a linked clone.
	if len(soap.Sent("<InstantClone_Task")) != 1 {
		t.Errorf("InstantClone_Task sent %d times, want 1", len(soap.Sent("<InstantClone_Task")))
	}
	snaps := soap.Sent("<CreateSnapshot_Task")
	if len(snaps) != 1 || !strings.Contains(snaps[0], "<memory>true</memory>") || !strings.Contains(snaps[0], "<name>mitosis-op1</name>") {
		t.Errorf("CreateSnapshot_Task requests = %q, want one memory snapshot named mitosis-op1", snaps)
	}
	clones := soap.Sent("<CloneVM_Task")
	if len(clones) != 1 || !strings.Contains(clones[0], "createNewChildDiskBacking") || !strings.Contains(clones[0], "<powerOn>true</powerOn>") || !strings.Contains(clones[0], "<snapshot ") {
		t.Errorf("CloneVM_Task requests = %q, want one powered-on linked clone from a snapshot", clones)
	}
	if !strings.Contains(logs.String(), "falling back to a linked clone") || !strings.Contains(logs.String(), "method="+MethodLinkedClone) {
		t.Errorf("the log does not say which path was taken:\n%s", logs.String())
	}

	// The server's answer is remembered: the next clone does not ask again.
	if _, err := c.Clone(t.Context(), req("op2", s.Template, 9)); err != nil {
		t.Fatal(err)
	}
	if n := len(soap.Sent("<InstantClone_Task")); n != 1 {
		t.Errorf("InstantClone_Task sent %d times after the server said it lacks it, want 1", n)
	}
	// A retry of op1 takes no second snapshot and makes no second clone.
	if _, err := c.Clone(t.Context(), req("op1", s.Template, 10)); err != nil {
		t.Fatal(err)
	}
	if n := len(soap.Sent("<CreateSnapshot_Task")); n != 2 {
		t.Errorf("%d snapshots taken for two operations and a retry, want 2", n)
	}
}

func TestInstantCloneWithoutFallbackIsUnsupportedOnVCSim(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	_, err := c.InstantClone(t.Context(), req("op1", s.Template, 1))
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("InstantClone on vcsim: err = %v, want ErrUnsupported", err)
	}
	if !strings.Contains(err.Error(), "cloning mitosis-op1 from "+s.Template) {
		t.Errorf("error lacks context: %v", err)
	}
}

func TestInstantCloneRequest(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	s.AddInstantClone()
	var logs testenv.Buffer
	c := newClient(t, s.Config(t, debugLogger(&logs)))
	sent := recordSOAP(c)

	vm, err := c.Clone(t.Context(), req("op7", s.Template, 42))
	if err != nil {
		t.Fatal(err)
	}
	if vm.Method != MethodInstantClone || vm.Name != "mitosis-op7" || !vm.Running {
		t.Errorf("clone = %+v, want a running instant clone named mitosis-op7", vm)
	}
	if !strings.Contains(logs.String(), "method="+MethodInstantClone) {
		t.Errorf("the log does not say the clone was an Instant Clone:\n%s", logs.String())
	}
	if n := len(sent.Sent("<CloneVM_Task")) + len(sent.Sent("<CreateSnapshot_Task")); n != 0 {
		t.Errorf("an Instant Clone also sent %d snapshot/clone requests", n)
	}

	// On the wire: one InstantClone_Task on the template, with the name,
	// the clone folder and the identity as guestinfo extraConfig.
	bodies := sent.Sent("<InstantClone_Task")
	if len(bodies) != 1 {
		t.Fatalf("InstantClone_Task sent %d times, want 1", len(bodies))
	}
	body := bodies[0]
	for _, want := range []string{
		"<_this type=\"VirtualMachine\">",
		"<name>mitosis-op7</name>",
		"<folder type=\"Folder\">" + c.folder.Reference().Value + "</folder>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("InstantClone_Task body lacks %s:\n%s", want, body)
		}
	}
	for k, v := range map[string]string{KeyOperation: "op7", KeyFence: "42", KeyNode: "mitosis-op7", KeyMethod: MethodInstantClone} {
		// <config …type="OptionValue"><key>K</key><value …type="xsd:string">V</value></config>
		re := regexp.MustCompile(`<config [^>]*type="OptionValue"><key>` + regexp.QuoteMeta(k) + `</key><value [^>]*type="xsd:string">` + regexp.QuoteMeta(v) + `</value></config>`)
		if !re.MatchString(body) {
			t.Errorf("InstantClone_Task body lacks extraConfig %s=%s:\n%s", k, v, body)
		}
	}

	// And as the server decoded it.
	got := s.Instants()
	if len(got) != 1 {
		t.Fatalf("server got %d InstantClone_Task, want 1", len(got))
	}
	r := got[0]
	tmpl, err := c.findVM(t.Context(), s.Template)
	if err != nil {
		t.Fatal(err)
	}
	if r.This != tmpl.Reference() {
		t.Errorf("InstantClone_Task on %v, want the template %v", r.This, tmpl.Reference())
	}
	if r.Spec.Name != "mitosis-op7" || r.Spec.Location.Folder == nil || *r.Spec.Location.Folder != c.folder.Reference() {
		t.Errorf("spec name %q, folder %v; want mitosis-op7 in %v", r.Spec.Name, r.Spec.Location.Folder, c.folder.Reference())
	}
	keys := map[string]string{}
	for _, b := range r.Spec.Config {
		ov := b.GetOptionValue()
		keys[ov.Key], _ = ov.Value.(string)
	}
	want := map[string]string{KeyOperation: "op7", KeyFence: "42", KeyNode: "mitosis-op7", KeyTemplate: s.Template, KeyMethod: MethodInstantClone}
	for k, v := range want {
		if keys[k] != v {
			t.Errorf("spec.config[%s] = %q, want %q", k, keys[k], v)
		}
	}
	if len(keys) != len(want) {
		t.Errorf("spec.config = %v, want exactly %v", keys, want)
	}

	// A retry finds the clone by name and sends no second request.
	again, err := c.Clone(t.Context(), req("op7", s.Template, 43))
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != vm.ID || again.Fence != 42 {
		t.Errorf("retry returned %+v, want %s made under fence 42", again, vm.ID)
	}
	if n := len(s.Instants()); n != 1 {
		t.Errorf("retry sent InstantClone_Task again (%d in all)", n)
	}
}

func TestDisableInstantClone(t *testing.T) {
	// (Not on AddInstantClone's vcsim: its wrapped VMs cannot be
	// snapshotted, vcsim's snapshot code wants its own type.)
	s := startVCSim(t, "mitosis", "secret")
	cfg := s.Config(t, debugLogger(t.Output()))
	cfg.DisableInstantClone = true
	c := newClient(t, cfg)
	sent := recordSOAP(c)
	vm, err := c.Clone(t.Context(), req("op1", s.Template, 1))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sent.Sent("<InstantClone_Task")); vm.Method != MethodLinkedClone || n != 0 {
		t.Errorf("method %s with %d Instant Clone requests; want a linked clone and none", vm.Method, n)
	}
}

func TestDestroyPowersOffFirst(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	vm, err := c.Clone(t.Context(), req("op1", s.Template, 1))
	if err != nil {
		t.Fatal(err)
	}
	sent := recordSOAP(c)
	if err := c.Destroy(t.Context(), vm.Name); err != nil {
		t.Fatal(err)
	}
	off, destroy := sent.Sent("<PowerOffVM_Task"), sent.Sent("<Destroy_Task")
	if len(off) != 1 || len(destroy) != 1 {
		t.Fatalf("sent %d PowerOffVM_Task and %d Destroy_Task, want one each", len(off), len(destroy))
	}
	// A VM already off is destroyed without a power-off.
	vm2, err := c.Clone(t.Context(), req("op2", s.Template, 1))
	if err != nil {
		t.Fatal(err)
	}
	task, err := object.NewVirtualMachine(c.vc, vmRef(vm2.ID)).PowerOff(t.Context())
	if err != nil || task.Wait(t.Context()) != nil {
		t.Fatalf("powering off: %v", err)
	}
	sent = recordSOAP(c)
	if err := c.Destroy(t.Context(), vm2.Name); err != nil {
		t.Fatal(err)
	}
	if n := len(sent.Sent("<PowerOffVM_Task")); n != 0 {
		t.Errorf("sent %d PowerOffVM_Task to a VM that was off, want 0", n)
	}
}

func TestClonePowersOnAnOwnCloneFoundOff(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	vm, err := c.Clone(t.Context(), req("op1", s.Template, 1))
	if err != nil {
		t.Fatal(err)
	}
	task, err := object.NewVirtualMachine(c.vc, vmRef(vm.ID)).PowerOff(t.Context())
	if err != nil || task.Wait(t.Context()) != nil {
		t.Fatalf("powering off: %v", err)
	}
	again, err := c.Clone(t.Context(), req("op1", s.Template, 1))
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != vm.ID || !again.Running {
		t.Errorf("retry = %+v, want %s running again", again, vm.ID)
	}
}

func TestCloneRefusesAStoppedTemplate(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	tmpl, err := c.findVM(t.Context(), s.Template)
	if err != nil {
		t.Fatal(err)
	}
	task, err := tmpl.PowerOff(t.Context())
	if err != nil || task.Wait(t.Context()) != nil {
		t.Fatalf("powering off: %v", err)
	}
	_, err = c.Clone(t.Context(), req("op1", s.Template, 1))
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("Clone of a stopped template: err = %v, want 'not running'", err)
	}
	if _, err := c.Lookup(t.Context(), "mitosis-op1"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("refused clone left a VM behind: %v", err)
	}
}

func TestLookupReportsHostAndAddress(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	tmpl, err := c.findVM(t.Context(), s.Template)
	if err != nil {
		t.Fatal(err)
	}
	// vcsim's way of letting a guest report an address.
	task, err := tmpl.Reconfigure(t.Context(), types.VirtualMachineConfigSpec{ExtraConfig: []types.BaseOptionValue{
		&types.OptionValue{Key: "SET.guest.ipAddress", Value: "10.0.0.7"},
	}})
	if err != nil || task.Wait(t.Context()) != nil {
		t.Fatalf("reconfigure: %v", err)
	}
	vm, err := c.Lookup(t.Context(), s.Template)
	if err != nil {
		t.Fatal(err)
	}
	sv := s.model.Map().Get(tmpl.Reference()).(*simulator.VirtualMachine)
	host := s.model.Map().Get(*sv.Runtime.Host).(*simulator.HostSystem)
	if vm.Host != host.Name || vm.Address != "10.0.0.7" || vm.ID != tmpl.Reference().Value {
		t.Errorf("Lookup = %+v, want host %s, address 10.0.0.7, id %s", vm, host.Name, tmpl.Reference().Value)
	}
	if vm.Operation != "" || vm.Fence != 0 || vm.Method != "" {
		t.Errorf("a VM mitosis did not make has metadata: %+v", vm)
	}
}

func TestSessionExpiryLogsInAgain(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	var logs testenv.Buffer
	c := newClient(t, s.Config(t, debugLogger(&logs)))
	if err := c.sm.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(t.Context(), s.Template); err != nil {
		t.Fatalf("Lookup after the session ended: %v", err)
	}
	if !strings.Contains(logs.String(), "session expired") {
		t.Errorf("no log line about the expired session:\n%s", logs.String())
	}
}

// The daemon must never link govmomi's simulator (it is big and answers
// as a vCenter): only tests may import it.
func TestSimulatorStaysOutOfNonTestCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps",
		"github.com/mitosis-autoscaler/mitosis/cmd/mitosis",
		"github.com/mitosis-autoscaler/mitosis/hypervisor/vsphere").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "govmomi/simulator") {
			t.Errorf("%s is linked into non-test code", p)
		}
	}
}
