package vsphere

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// vcsim is govmomi's vCenter simulator, in process on 127.0.0.1 with TLS,
// accepting one username and password.
type vcsim struct {
	model    *simulator.Model
	srv      *simulator.Server
	user     string
	password string
	// Template is a running VM of the inventory.
	Template string

	mu       sync.Mutex
	instants []*types.InstantClone_Task // requests the Instant Clone handler got
}

func startVCSim(t testing.TB, user, password string) *vcsim {
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
	vm := model.Map().Any("VirtualMachine").(*simulator.VirtualMachine)
	if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("vcsim template %s is %s", vm.Name, vm.Runtime.PowerState)
	}
	return &vcsim{model: model, srv: srv, user: user, password: password, Template: vm.Name}
}

// Config returns a Config for the simulator with credentials in a file
// and logs into log.
func (s *vcsim) Config(t testing.TB, log *slog.Logger) Config {
	t.Helper()
	ca, err := s.srv.CertificateFile()
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		URL:             "https://" + s.srv.URL.Host + "/sdk",
		CAFile:          ca,
		CredentialsFile: writeCredentials(t, s.user, s.password),
		// vcsim's clones report no guest address: not waiting for one
		// keeps each clone at its simulator's speed.
		AddressWait: new(time.Duration(0)),
		Logger:      log,
	}
}

func writeCredentials(t testing.TB, user, password string) string {
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
func (s *vcsim) AddInstantClone() {
	for _, e := range s.model.Map().All("VirtualMachine") {
		s.model.Map().Put(&instantCloneVM{VirtualMachine: e.(*simulator.VirtualMachine), sim: s})
	}
}

// Instants returns the Instant Clone requests the simulator received.
func (s *vcsim) Instants() []*types.InstantClone_Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*types.InstantClone_Task(nil), s.instants...)
}

type instantCloneVM struct {
	*simulator.VirtualMachine
	sim *vcsim
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

// soapRecorder keeps the SOAP bodies a client sends.
type soapRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	sent []string
}

func (r *soapRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		_ = req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(b))
		r.mu.Lock()
		r.sent = append(r.sent, string(b))
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

// Sent returns the bodies that contain s.
func (r *soapRecorder) Sent(s string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.sent {
		if strings.Contains(b, s) {
			out = append(out, b)
		}
	}
	return out
}

// recordSOAP makes c's SOAP requests go through a recorder.
func recordSOAP(c *Client) *soapRecorder {
	r := &soapRecorder{next: c.vc.Client.Transport}
	c.vc.Client.Transport = r
	return r
}

// logBuffer is a concurrency-safe buffer for a debug-level slog logger.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}
