// Package vspheretest runs govmomi's vCenter simulator (vcsim) in process
// for tests: the vsphere package's own, and the end-to-end tests that
// drive the sagas through the vSphere back-end. It can add the
// InstantClone_Task vcsim lacks, and lets a test look at a VM and play
// its guest (report an IP address) through a session of its own.
//
// Only tests import it: it links the simulator, which the daemon must
// never link (vsphere's TestSimulatorStaysOutOfNonTestCode). It does not import
// the vsphere package, whose internal tests import it.
package vspheretest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Sim is a vcsim (simulator.VPX()) on 127.0.0.1 with TLS, accepting one
// username and password. It is removed when the test ends.
type Sim struct {
	Model  *simulator.Model
	Server *simulator.Server
	// User and Password are the only credentials it accepts.
	User, Password string
	// CAFile is a PEM file of the server's certificate, to trust it.
	CAFile string
	// Template is the name of a running VM of the inventory.
	Template string

	mu       sync.Mutex
	instants []*types.InstantClone_Task // requests the Instant Clone handler got
	vc       *vim25.Client              // the test's own session (inspect, SetGuestIP)
}

// Start runs a simulator until the test ends.
func Start(t testing.TB, user, password string) *Sim {
	t.Helper()
	model := simulator.VPX()
	if err := model.Create(); err != nil {
		t.Fatalf("vcsim: %v", err)
	}
	t.Cleanup(model.Remove)
	model.Service.TLS = new(tls.Config)
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(user, password)}
	srv := model.Service.NewServer()
	t.Cleanup(srv.Close)
	ca, err := srv.CertificateFile()
	if err != nil {
		t.Fatalf("vcsim certificate: %v", err)
	}
	vm := model.Map().Any("VirtualMachine").(*simulator.VirtualMachine)
	if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("vcsim template %s is %s", vm.Name, vm.Runtime.PowerState)
	}
	return &Sim{Model: model, Server: srv, User: user, Password: password, CAFile: ca, Template: vm.Name}
}

// URL is the simulator's SDK endpoint, without credentials.
func (s *Sim) URL() string { return "https://" + s.Server.URL.Host + "/sdk" }

// CredentialsFile writes the simulator's credentials to a file, as the
// vsphere back-end reads them (username, then password, one per line).
func (s *Sim) CredentialsFile(t testing.TB) string {
	t.Helper()
	return WriteCredentials(t, s.User, s.Password)
}

// WriteCredentials writes a credentials file, readable by its owner only,
// in a directory removed when the test ends.
func WriteCredentials(t testing.TB, user, password string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "vsphere-credentials")
	if err := os.WriteFile(f, []byte(user+"\n"+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// AddInstantClone gives vcsim the InstantClone_Task it lacks. vcsim finds
// a method by reflection on the object registered under the request's
// _this ("InstantClone_Task" → InstantCloneTask), so every VM is replaced
// in the registry by a wrapper that has the method, under the same
// reference. (Registry.Handler looks like the place for this, but in
// v0.56.0 a logged-in session's own look-up overrides what it returns.)
//
// The wrapper records the request and makes a powered-on clone with
// vcsim's own CloneVM_Task, named and placed as the spec says, with the
// spec's extraConfig, and wraps it in turn so a clone of a clone is an
// Instant Clone too. The memory is not continued (vcsim has none), but
// what the client sees is Instant Clone's API.
func (s *Sim) AddInstantClone() {
	for _, e := range s.Model.Map().All("VirtualMachine") {
		s.Model.Map().Put(&instantCloneVM{VirtualMachine: e.(*simulator.VirtualMachine), sim: s})
	}
}

// Instants returns the Instant Clone requests the simulator received.
func (s *Sim) Instants() []*types.InstantClone_Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*types.InstantClone_Task(nil), s.instants...)
}

type instantCloneVM struct {
	*simulator.VirtualMachine
	sim *Sim
}

// InstantCloneTask answers InstantClone_Task.
func (vm *instantCloneVM) InstantCloneTask(ctx *simulator.Context, req *types.InstantClone_Task) soap.HasFault {
	vm.sim.mu.Lock()
	vm.sim.instants = append(vm.sim.instants, req)
	vm.sim.mu.Unlock()
	task := simulator.CreateTask(vm, "instantClone", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
			return nil, &types.InvalidPowerState{ExistingState: vm.Runtime.PowerState, RequestedState: types.VirtualMachinePowerStatePoweredOn}
		}
		folder := vm.Parent
		if req.Spec.Location.Folder != nil {
			folder = req.Spec.Location.Folder
		}
		res := vm.CloneVMTask(ctx, &types.CloneVM_Task{
			This:   req.This,
			Folder: *folder,
			Name:   req.Spec.Name,
			Spec: types.VirtualMachineCloneSpec{
				Location: req.Spec.Location,
				PowerOn:  true,
				Config:   &types.VirtualMachineConfigSpec{ExtraConfig: req.Spec.Config},
			},
		}).(*methods.CloneVM_TaskBody)
		if res.Fault_ != nil {
			return nil, res.Fault_.Detail.Fault.(types.BaseMethodFault)
		}
		clone := ctx.Map.Get(res.Res.Returnval).(*simulator.Task)
		clone.Wait()
		if clone.Info.Error != nil {
			return nil, clone.Info.Error.Fault
		}
		ref := clone.Info.Result.(types.ManagedObjectReference)
		ctx.Map.Put(&instantCloneVM{VirtualMachine: ctx.Map.Get(ref).(*simulator.VirtualMachine), sim: vm.sim})
		return ref, nil
	})
	return &methods.InstantClone_TaskBody{Res: &types.InstantClone_TaskResponse{Returnval: task.Run(ctx)}}
}

// VM is a simulated VM as the vSphere API reports it.
type VM struct {
	Name, ID   string
	PowerState types.VirtualMachinePowerState
	// IPAddress is guest.ipAddress, what VMware Tools would report.
	IPAddress string
	// ExtraConfig is config.extraConfig (guestinfo.* among it).
	ExtraConfig map[string]string
}

// VM returns the VM named name; ok is false if there is none. Several VMs
// of that name are an error.
func (s *Sim) VM(ctx context.Context, name string) (vm VM, ok bool, err error) {
	o, ok, err := s.find(ctx, name, "runtime.powerState", "guest.ipAddress", "config.extraConfig")
	if !ok || err != nil {
		return VM{}, false, err
	}
	vm = VM{Name: o.Name, ID: o.Self.Value, PowerState: o.Runtime.PowerState, ExtraConfig: map[string]string{}}
	if o.Guest != nil {
		vm.IPAddress = o.Guest.IpAddress
	}
	if o.Config != nil {
		for _, b := range o.Config.ExtraConfig {
			ov := b.GetOptionValue()
			v, _ := ov.Value.(string)
			vm.ExtraConfig[ov.Key] = v
		}
	}
	return vm, true, nil
}

// SetGuestIP makes the VM named name report ip as its guest's address,
// as VMware Tools would once the guest has one: vcsim takes it from the
// extraConfig key SET.guest.ipAddress, which it does not keep.
func (s *Sim) SetGuestIP(ctx context.Context, name, ip string) error {
	o, ok, err := s.find(ctx, name)
	if err == nil && !ok {
		err = fmt.Errorf("no VM named %s", name)
	}
	if err != nil {
		return fmt.Errorf("vcsim: setting the guest address of %s: %w", name, err)
	}
	vc, err := s.client(ctx)
	if err != nil {
		return err
	}
	task, err := object.NewVirtualMachine(vc, o.Self).Reconfigure(ctx, types.VirtualMachineConfigSpec{
		ExtraConfig: []types.BaseOptionValue{&types.OptionValue{Key: "SET.guest.ipAddress", Value: ip}},
	})
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("vcsim: setting the guest address of %s: %w", name, err)
	}
	return nil
}

// find reads the VM named name, with its name and props, among every VM
// of the inventory, compared exactly.
func (s *Sim) find(ctx context.Context, name string, props ...string) (mo.VirtualMachine, bool, error) {
	vc, err := s.client(ctx)
	if err != nil {
		return mo.VirtualMachine{}, false, err
	}
	v, err := view.NewManager(vc).CreateContainerView(ctx, vc.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		return mo.VirtualMachine{}, false, fmt.Errorf("vcsim: %w", err)
	}
	defer func() { _ = v.Destroy(context.WithoutCancel(ctx)) }()
	var all []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, append([]string{"name"}, props...), &all); err != nil {
		return mo.VirtualMachine{}, false, fmt.Errorf("vcsim: %w", err)
	}
	var found []mo.VirtualMachine
	for _, o := range all {
		if o.Name == name {
			found = append(found, o)
		}
	}
	switch len(found) {
	case 0:
		return mo.VirtualMachine{}, false, nil
	case 1:
		return found[0], true, nil
	}
	return mo.VirtualMachine{}, false, fmt.Errorf("vcsim: %d VMs are named %s", len(found), name)
}

// client is the test's own session, logged in on first use: the code
// under test keeps its own.
func (s *Sim) client(ctx context.Context) (*vim25.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vc != nil {
		return s.vc, nil
	}
	sc := soap.NewClient(&url.URL{Scheme: "https", Host: s.Server.URL.Host, Path: "/sdk"}, false)
	if err := sc.SetRootCAs(s.CAFile); err != nil {
		return nil, fmt.Errorf("vcsim: %w", err)
	}
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("vcsim: %w", err)
	}
	if err := session.NewManager(vc).Login(ctx, url.UserPassword(s.User, s.Password)); err != nil {
		return nil, fmt.Errorf("vcsim: logging in: %w", err)
	}
	s.vc = vc
	return vc, nil
}
