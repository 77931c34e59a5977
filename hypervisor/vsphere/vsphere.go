// Package vsphere is the vSphere back-end of the hypervisor contract,
// over govmomi.
//
// A clone is an Instant Clone of the running template (InstantClone_Task):
// it continues the template's memory, so the application's caches are
// warm. When the server lacks Instant Clone (vcsim, an old vCenter, a VM
// it cannot instant-clone), Clone falls back to a linked clone from a
// memory snapshot of the template (CloneVM_Task, powered on). The path
// taken is in VM.Method, in the clone's metadata and in a log line.
//
// Every clone carries its identity in extraConfig under guestinfo.mitosis.*
// (see the Key constants); the guest reads it with
// `vmtoolsd --cmd "info-get guestinfo.mitosis.node"`, and Clone reads the
// operation back to stay idempotent.
package vsphere

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
)

// How a clone was made, in VM.Method and in KeyMethod.
const (
	MethodInstantClone = "instant-clone"
	MethodLinkedClone  = "linked-clone"
)

// The extraConfig keys of a clone's metadata. guestinfo.* keys are
// readable (and writable) by the guest through VMware Tools, which is how
// the clone learns its identity; mitosis reads only the operation and the
// fence back.
const (
	KeyOperation = "guestinfo.mitosis.operation"
	KeyFence     = "guestinfo.mitosis.fence"
	KeyNode      = "guestinfo.mitosis.node"
	KeyTemplate  = "guestinfo.mitosis.template"
	KeyMethod    = "guestinfo.mitosis.method"
)

// vmProps are the properties a VM is read with.
var vmProps = []string{"name", "runtime.powerState", "runtime.host", "guest.ipAddress", "guest.net", "config.extraConfig"}

// Client is a logged-in connection to vSphere that implements the
// hypervisor roles. It is safe for concurrent use.
type Client struct {
	cfg    Config
	log    *slog.Logger
	vc     *vim25.Client
	sm     *session.Manager
	finder *find.Finder
	dc     *object.Datacenter   // where VMs are looked up by name
	folder *object.Folder       // where clones are made
	pool   *object.ResourcePool // nil: the template's
	host   *object.HostSystem   // nil: the template's

	loginMu sync.Mutex
	// noInstant is set once the server answered that it has no Instant
	// Clone at all, so that later clones do not ask again.
	noInstant atomic.Bool

	hostMu    sync.Mutex
	hostNames map[types.ManagedObjectReference]string
}

var (
	_ hypervisor.Hypervisor    = (*Client)(nil)
	_ hypervisor.InstantCloner = (*Client)(nil)
)

// New connects to vSphere, logs in and resolves the configured inventory.
// Close logs out.
func New(ctx context.Context, cfg Config) (*Client, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, err := cfg.apiURL()
	if err != nil {
		return nil, err
	}
	log = log.With("vcenter", u.Host)

	sc := soap.NewClient(u, cfg.Insecure)
	sc.UserAgent = "mitosis"
	if cfg.CAFile != "" {
		if err := sc.SetRootCAs(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("vsphere: ca_file: %w", err)
		}
	}
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("vsphere: connecting to %s: %w", u.Redacted(), err)
	}
	c := &Client{
		cfg: cfg, log: log, vc: vc,
		sm:        session.NewManager(vc),
		hostNames: make(map[types.ManagedObjectReference]string),
	}
	if err := c.login(ctx); err != nil {
		return nil, err
	}
	if err := c.resolve(ctx); err != nil {
		_ = c.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	log.Info("vsphere connected", "url", u.Redacted(), "datacenter", cfg.Datacenter, "folder", c.folder.InventoryPath,
		"instant_clone", !cfg.DisableInstantClone)
	return c, nil
}

// login (re)reads the credentials and logs in. The server's answer to a
// failed login is reported by kind only: some servers echo what they got.
func (c *Client) login(ctx context.Context) error {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	creds, err := c.cfg.credentials(c.log)
	if err != nil {
		return err
	}
	if err := c.sm.Login(ctx, creds); err != nil {
		c.log.Warn("vsphere login failed", "err", redact(err, creds))
		return fmt.Errorf("vsphere: logging in: %w", redact(err, creds))
	}
	c.log.Debug("vsphere logged in")
	return nil
}

// redact returns err, or a plain error of the same kind when its text
// contains the username or the password.
func redact(err error, creds *url.Userinfo) error {
	msg := err.Error()
	pass, _ := creds.Password()
	user := creds.Username()
	if (pass != "" && strings.Contains(msg, pass)) || (len(user) >= 4 && strings.Contains(msg, user)) {
		if fault.Is(err, &types.InvalidLogin{}) {
			return errors.New("invalid login (the server's message was withheld: it quoted the credentials)")
		}
		return errors.New("login failed (the server's message was withheld: it quoted the credentials)")
	}
	return err
}

// resolve finds the datacenter, folder, pool and host of the Config.
func (c *Client) resolve(ctx context.Context) error {
	c.finder = find.NewFinder(c.vc, true)
	dc, err := c.finder.DatacenterOrDefault(ctx, c.cfg.Datacenter)
	if err != nil {
		return fmt.Errorf("vsphere: datacenter: %w", err)
	}
	c.finder.SetDatacenter(dc)
	c.dc = dc
	if c.folder, err = c.finder.FolderOrDefault(ctx, c.cfg.Folder); err != nil {
		return fmt.Errorf("vsphere: folder: %w", err)
	}
	if c.cfg.ResourcePool != "" {
		if c.pool, err = c.finder.ResourcePool(ctx, c.cfg.ResourcePool); err != nil {
			return fmt.Errorf("vsphere: resource pool: %w", err)
		}
	}
	if c.cfg.Host != "" {
		if c.host, err = c.finder.HostSystem(ctx, c.cfg.Host); err != nil {
			return fmt.Errorf("vsphere: host: %w", err)
		}
	}
	return nil
}

// Close logs out.
func (c *Client) Close(ctx context.Context) error {
	if err := c.sm.Logout(ctx); err != nil {
		return fmt.Errorf("vsphere: logging out: %w", err)
	}
	return nil
}

// call runs f, and once more after logging in again if the session
// expired (vCenter drops idle sessions; the credentials may have been
// rotated since, which is why login reads them again). Every f is
// idempotent, so running it twice is safe.
func (c *Client) call(ctx context.Context, f func() error) error {
	err := f()
	if err == nil || !fault.Is(err, &types.NotAuthenticated{}) {
		return err
	}
	c.log.Info("vsphere session expired; logging in again")
	if lerr := c.login(ctx); lerr != nil {
		return lerr
	}
	return f()
}

// Clone keeps hypervisor.Cloner's contract: it returns the clone of this
// operation if it exists, else makes one by Instant Clone, else (the
// server lacks it) by a linked clone from a memory snapshot.
func (c *Client) Clone(ctx context.Context, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	return c.clone(ctx, req, true)
}

// InstantClone keeps hypervisor.InstantCloner's contract: like Clone
// without the fallback.
func (c *Client) InstantClone(ctx context.Context, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	return c.clone(ctx, req, false)
}

func (c *Client) clone(ctx context.Context, req hypervisor.CloneRequest, fallback bool) (vm hypervisor.VM, err error) {
	if req.Name == "" || req.Operation == "" || req.Template == "" {
		return hypervisor.VM{}, fmt.Errorf("cloning %q from %q: a clone needs a name, an operation and a template", req.Name, req.Template)
	}
	if !validName(req.Name) {
		return hypervisor.VM{}, fmt.Errorf("cloning %q from %q: a VM name must not contain %q or be %q or %q", req.Name, req.Template, "/", ".", "..")
	}
	err = c.call(ctx, func() error {
		vm, err = c.cloneOnce(ctx, req, fallback)
		return err
	})
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("cloning %s from %s: %w", req.Name, req.Template, err)
	}
	return vm, nil
}

func (c *Client) cloneOnce(ctx context.Context, req hypervisor.CloneRequest, fallback bool) (hypervisor.VM, error) {
	log := c.log.With("vm", req.Name, "template", req.Template, "op", req.Operation, "fence", req.Fence)
	if vm, ok, err := c.existing(ctx, req, !fallback, log); ok || err != nil {
		return vm, err
	}
	tmpl, err := c.findVM(ctx, req.Template)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("template: %w", err)
	}
	var t mo.VirtualMachine
	if err := tmpl.Properties(ctx, tmpl.Reference(), []string{"runtime.powerState"}, &t); err != nil {
		return hypervisor.VM{}, fmt.Errorf("template: %w", notFound(err))
	}
	if t.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		return hypervisor.VM{}, fmt.Errorf("template is %s, not running", t.Runtime.PowerState)
	}

	start := time.Now()
	method := MethodInstantClone
	ref, err := c.instantClone(ctx, tmpl, req, log)
	if errors.Is(err, errors.ErrUnsupported) && fallback {
		log.Info("vsphere instant clone unavailable; falling back to a linked clone", "reason", err)
		method = MethodLinkedClone
		ref, err = c.linkedClone(ctx, tmpl, req, log)
	}
	if fault.Is(err, &types.DuplicateName{}) {
		// Another call for the same name won the race; it may be ours.
		if vm, ok, err := c.existing(ctx, req, !fallback, log); ok || err != nil {
			return vm, err
		}
	}
	if err != nil {
		return hypervisor.VM{}, err
	}
	vm, err := c.read(ctx, object.NewVirtualMachine(c.vc, ref))
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("reading the new clone: %w", err)
	}
	vm = c.waitAddress(ctx, vm, req.Template, log)
	log.Info("vsphere cloned", "method", method, "id", vm.ID, "host", vm.Host, "address", vm.Address, "took", time.Since(start).Round(time.Millisecond))
	return vm, nil
}

// existing returns the clone of req's operation if one is made (powered on
// if it was not), and reports ok=false if no VM of the datacenter has
// req.Name. It looks where Lookup and Destroy look (the whole datacenter,
// not only the clone folder), so a VM of that name made for another
// operation, or not by mitosis, wherever it is, is refused with
// ErrNameTaken, as are several VMs of that name. With live (InstantClone)
// the clone found must be an Instant Clone: InstantClone promised the
// template's memory, and a linked clone has none.
func (c *Client) existing(ctx context.Context, req hypervisor.CloneRequest, live bool, log *slog.Logger) (hypervisor.VM, bool, error) {
	objs, err := c.vmsNamed(ctx, req.Name)
	if err != nil || len(objs) == 0 {
		return hypervisor.VM{}, false, err
	}
	if len(objs) > 1 {
		return hypervisor.VM{}, false, fmt.Errorf("%d VMs are named %s (%s): %w", len(objs), req.Name, ids(objs), hypervisor.ErrNameTaken)
	}
	obj := objs[0]
	vm, err := c.read(ctx, obj)
	if errors.Is(err, hypervisor.ErrNotFound) {
		return hypervisor.VM{}, false, nil // destroyed meanwhile
	}
	if err != nil {
		return hypervisor.VM{}, false, err
	}
	if vm.Operation != req.Operation {
		return hypervisor.VM{}, false, fmt.Errorf("%s (%s) was made by operation %q: %w", req.Name, vm.ID, vm.Operation, hypervisor.ErrNameTaken)
	}
	if live && vm.Method != MethodInstantClone {
		return hypervisor.VM{}, false, fmt.Errorf("%s (%s) of this operation is a %s, not an Instant Clone (a cold clone, not a live one)", req.Name, vm.ID, orUnknown(vm.Method))
	}
	if !vm.Running {
		log.Info("vsphere clone already made but off; powering it on", "id", vm.ID)
		if err := powerOn(ctx, obj); err != nil {
			return hypervisor.VM{}, false, err
		}
		vm.Running = true
	}
	log.Info("vsphere clone already made", "id", vm.ID, "method", vm.Method)
	return c.waitAddress(ctx, vm, req.Template, log), true, nil
}

func orUnknown(method string) string {
	if method == "" {
		return "clone of unknown method"
	}
	return method
}

func (c *Client) metadata(req hypervisor.CloneRequest, method string) []types.BaseOptionValue {
	return []types.BaseOptionValue{
		&types.OptionValue{Key: KeyOperation, Value: req.Operation},
		&types.OptionValue{Key: KeyFence, Value: strconv.FormatUint(req.Fence, 10)},
		&types.OptionValue{Key: KeyNode, Value: req.Name},
		&types.OptionValue{Key: KeyTemplate, Value: req.Template},
		&types.OptionValue{Key: KeyMethod, Value: method},
	}
}

// instantClone asks for an Instant Clone. An answer that the server or
// this VM cannot do it is an error wrapping errors.ErrUnsupported.
func (c *Client) instantClone(ctx context.Context, tmpl *object.VirtualMachine, req hypervisor.CloneRequest, log *slog.Logger) (types.ManagedObjectReference, error) {
	if c.cfg.DisableInstantClone || c.noInstant.Load() {
		return types.ManagedObjectReference{}, fmt.Errorf("instant clone: %w", errors.ErrUnsupported)
	}
	folder := c.folder.Reference()
	spec := types.VirtualMachineInstantCloneSpec{
		Name:     req.Name,
		Location: types.VirtualMachineRelocateSpec{Folder: &folder},
		Config:   c.metadata(req, MethodInstantClone),
	}
	if c.pool != nil {
		pool := c.pool.Reference()
		spec.Location.Pool = &pool
	}
	log.Debug("vsphere instant clone", "folder", c.folder.InventoryPath)
	task, err := tmpl.InstantClone(ctx, spec)
	if err == nil {
		var info *types.TaskInfo
		if info, err = task.WaitForResult(ctx); err == nil {
			ref, ok := info.Result.(types.ManagedObjectReference)
			if !ok {
				return ref, fmt.Errorf("instant clone: task result is %T, want a VM", info.Result)
			}
			return ref, nil
		}
	}
	switch {
	case fault.Is(err, &types.MethodNotFound{}), fault.Is(err, &types.NotImplemented{}):
		c.noInstant.Store(true) // the server has none: don't ask again
		return types.ManagedObjectReference{}, fmt.Errorf("instant clone: %w (%v)", errors.ErrUnsupported, err)
	case fault.Is(err, &types.NotSupported{}):
		return types.ManagedObjectReference{}, fmt.Errorf("instant clone: %w (%v)", errors.ErrUnsupported, err)
	}
	return types.ManagedObjectReference{}, fmt.Errorf("instant clone: %w", err)
}

// linkedClone takes (or reuses) a memory snapshot of the running template
// named after the clone, so a retry does not take a second one, and makes
// a powered-on linked clone of it.
func (c *Client) linkedClone(ctx context.Context, tmpl *object.VirtualMachine, req hypervisor.CloneRequest, log *slog.Logger) (types.ManagedObjectReference, error) {
	snap, err := findSnapshot(ctx, tmpl, req.Name)
	if err != nil {
		return types.ManagedObjectReference{}, fmt.Errorf("linked clone: %w", err)
	}
	if snap == nil {
		log.Debug("vsphere memory snapshot of template", "snapshot", req.Name)
		task, err := tmpl.CreateSnapshot(ctx, req.Name, "mitosis clone point of operation "+req.Operation, true, false)
		if err != nil {
			return types.ManagedObjectReference{}, fmt.Errorf("linked clone: snapshot: %w", err)
		}
		info, err := task.WaitForResult(ctx)
		if err != nil {
			return types.ManagedObjectReference{}, fmt.Errorf("linked clone: snapshot: %w", err)
		}
		ref, ok := info.Result.(types.ManagedObjectReference)
		if !ok {
			return types.ManagedObjectReference{}, fmt.Errorf("linked clone: snapshot task result is %T", info.Result)
		}
		snap = &ref
	}
	spec := types.VirtualMachineCloneSpec{
		Location: types.VirtualMachineRelocateSpec{
			DiskMoveType: string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking),
		},
		Snapshot: snap,
		PowerOn:  true,
		Config:   &types.VirtualMachineConfigSpec{ExtraConfig: c.metadata(req, MethodLinkedClone)},
	}
	if c.pool != nil {
		pool := c.pool.Reference()
		spec.Location.Pool = &pool
	}
	if c.host != nil {
		host := c.host.Reference()
		spec.Location.Host = &host
	}
	task, err := tmpl.Clone(ctx, c.folder, req.Name, spec)
	if err != nil {
		return types.ManagedObjectReference{}, fmt.Errorf("linked clone: %w", err)
	}
	info, err := task.WaitForResult(ctx)
	if err != nil {
		return types.ManagedObjectReference{}, fmt.Errorf("linked clone: %w", err)
	}
	ref, ok := info.Result.(types.ManagedObjectReference)
	if !ok {
		return ref, fmt.Errorf("linked clone: task result is %T, want a VM", info.Result)
	}
	return ref, nil
}

// findSnapshot returns the snapshot of vm named name, or nil.
func findSnapshot(ctx context.Context, vm *object.VirtualMachine, name string) (*types.ManagedObjectReference, error) {
	var o mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"snapshot"}, &o); err != nil {
		return nil, err
	}
	if o.Snapshot == nil {
		return nil, nil
	}
	var walk func([]types.VirtualMachineSnapshotTree) *types.ManagedObjectReference
	walk = func(ts []types.VirtualMachineSnapshotTree) *types.ManagedObjectReference {
		for i := range ts {
			if ts[i].Name == name {
				return &ts[i].Snapshot
			}
			if r := walk(ts[i].ChildSnapshotList); r != nil {
				return r
			}
		}
		return nil
	}
	return walk(o.Snapshot.RootSnapshotList), nil
}

// waitAddress waits up to Config.AddressWait for the guest to report an
// address a peer can reach and that its template does not hold (see
// pickAddress).
func (c *Client) waitAddress(ctx context.Context, vm hypervisor.VM, template string, log *slog.Logger) hypervisor.VM {
	wait := c.cfg.addressWait()
	if vm.Address != "" || wait <= 0 {
		return vm
	}
	taken := c.addressesOf(ctx, template)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var (
		ip   string
		nets []types.GuestNicInfo
		addr string
	)
	err := property.Wait(ctx, property.DefaultCollector(c.vc), vmRef(vm.ID), []string{"guest.ipAddress", "guest.net"}, func(changes []types.PropertyChange) bool {
		for _, ch := range changes {
			switch ch.Name {
			case "guest.ipAddress":
				ip, _ = ch.Val.(string)
			case "guest.net":
				a, _ := ch.Val.(types.ArrayOfGuestNicInfo)
				nets = a.GuestNicInfo
			}
		}
		addr = pickAddress(ip, nets, taken)
		return addr != ""
	})
	if err != nil || addr == "" {
		log.Warn("vsphere clone has no address yet", "id", vm.ID, "waited", wait, "err", err)
		return vm
	}
	vm.Address = addr
	return vm
}

// pickAddress is the address of a guest that a peer can reach: the first
// IPv4 one of the primary address and the NICs' addresses, else the first
// IPv6 one. Loopback, link-local (fe80::/10, 169.254.0.0/16) and
// unspecified addresses never are: a guest reports them before its
// network is up, and an address wait must go on waiting. Nor is one in
// taken, its template's: an Instant Clone's guest goes on with its
// template's network configuration until it takes its own, and the
// address is the template's meanwhile (hypervisor.VM.Address).
func pickAddress(primary string, nets []types.GuestNicInfo, taken map[string]bool) string {
	var v6 string
	for _, a := range guestAddresses(primary, nets) {
		ip, err := netip.ParseAddr(a)
		if err != nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() {
			continue
		}
		ip = ip.Unmap()
		if taken[ip.String()] {
			continue
		}
		if ip.Is4() {
			return ip.String()
		}
		if v6 == "" {
			v6 = ip.String()
		}
	}
	return v6
}

// guestAddresses are every address a guest reports: its primary one and
// its NICs'.
func guestAddresses(primary string, nets []types.GuestNicInfo) []string {
	out := []string{primary}
	for _, n := range nets {
		out = append(out, n.IpAddress...)
	}
	return out
}

// addressesOf are the addresses the guest of the VM named name reports
// (unmapped), none if there is no such VM or it cannot be read: what a
// clone of it must not be reported at.
func (c *Client) addressesOf(ctx context.Context, name string) map[string]bool {
	if name == "" {
		return nil
	}
	obj, err := c.findVM(ctx, name)
	if err != nil {
		return nil
	}
	var o mo.VirtualMachine
	if err := property.DefaultCollector(c.vc).RetrieveOne(ctx, obj.Reference(), []string{"guest.ipAddress", "guest.net"}, &o); err != nil || o.Guest == nil {
		return nil
	}
	out := map[string]bool{}
	for _, a := range guestAddresses(o.Guest.IpAddress, o.Guest.Net) {
		if ip, err := netip.ParseAddr(a); err == nil {
			out[ip.Unmap().String()] = true
		}
	}
	return out
}

// Destroy keeps hypervisor.Destroyer's contract: power off (if on), then
// Destroy_Task; a VM that does not exist is success.
func (c *Client) Destroy(ctx context.Context, name string) error {
	err := c.call(ctx, func() error { return c.destroyOnce(ctx, name) })
	if err != nil {
		return fmt.Errorf("destroying %s: %w", name, err)
	}
	return nil
}

func (c *Client) destroyOnce(ctx context.Context, name string) error {
	vm, err := c.findVM(ctx, name)
	if errors.Is(err, hypervisor.ErrNotFound) {
		c.log.Debug("vsphere destroy: no such vm", "vm", name)
		return nil
	}
	if err != nil {
		return err // several VMs of that name among them: never a guess
	}
	start := time.Now()
	state, err := vm.PowerState(ctx)
	if err != nil {
		return ignoreGone(err)
	}
	if state != types.VirtualMachinePowerStatePoweredOff {
		task, err := vm.PowerOff(ctx)
		if err == nil {
			err = task.Wait(ctx)
		}
		// A VM that went off meanwhile answers InvalidPowerState: fine.
		if err != nil && !fault.Is(err, &types.InvalidPowerState{}) {
			return fmt.Errorf("powering off: %w", ignoreGone(err))
		}
	}
	task, err := vm.Destroy(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err := ignoreGone(err); err != nil {
		return err
	}
	c.log.Info("vsphere destroyed", "vm", name, "id", vm.Reference().Value, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// ignoreGone turns "that object no longer exists" into success: someone
// else destroyed the VM between our look-up and our call.
func ignoreGone(err error) error {
	if err != nil && fault.Is(err, &types.ManagedObjectNotFound{}) {
		return nil
	}
	return err
}

// Lookup keeps hypervisor.Finder's contract.
func (c *Client) Lookup(ctx context.Context, name string) (vm hypervisor.VM, err error) {
	err = c.call(ctx, func() error {
		obj, err := c.findVM(ctx, name)
		if err != nil {
			return err
		}
		vm, err = c.read(ctx, obj)
		return err
	})
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("looking up %s: %w", name, err)
	}
	return vm, nil
}

// validName reports whether name can be a VM's name here. Names are
// names, never inventory paths: "/" (which vSphere would store as %2f,
// and govmomi's finder takes for a path), "." and ".." are refused by
// Clone and are nobody's name for Lookup and Destroy.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.Contains(name, "/")
}

// vmsNamed returns every VM of the datacenter (any folder) whose name is
// exactly name: no pattern, no path. vSphere keeps "%" and "\" in a name
// escaped (%25, %5c); either spelling matches.
func (c *Client) vmsNamed(ctx context.Context, name string) ([]*object.VirtualMachine, error) {
	if !validName(name) {
		return nil, nil
	}
	escaped := strings.NewReplacer("%", "%25", `\`, "%5c").Replace(name)
	v, err := view.NewManager(c.vc).CreateContainerView(ctx, c.dc.Reference(), []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = v.Destroy(context.WithoutCancel(ctx)) }()
	var all []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name"}, &all); err != nil {
		return nil, err
	}
	var out []*object.VirtualMachine
	for _, o := range all {
		if o.Name == name || o.Name == escaped {
			out = append(out, object.NewVirtualMachine(c.vc, o.Self))
		}
	}
	return out, nil
}

// findVM finds the VM named name anywhere in the datacenter (templates and
// the nodes a cluster started with may live outside the clone folder). No
// such VM, or an invalid name, is ErrNotFound; several VMs of that name is
// an error (not ErrNotFound) rather than a guess.
func (c *Client) findVM(ctx context.Context, name string) (*object.VirtualMachine, error) {
	vms, err := c.vmsNamed(ctx, name)
	if err != nil {
		return nil, err
	}
	switch len(vms) {
	case 0:
		return nil, hypervisor.ErrNotFound
	case 1:
		return vms[0], nil
	}
	return nil, fmt.Errorf("%d VMs are named %s (%s); refusing to choose one", len(vms), name, ids(vms))
}

func ids(vms []*object.VirtualMachine) string {
	s := make([]string, len(vms))
	for i, vm := range vms {
		s[i] = vm.Reference().Value
	}
	return strings.Join(s, ", ")
}

// read reads a VM's state and metadata.
func (c *Client) read(ctx context.Context, obj *object.VirtualMachine) (hypervisor.VM, error) {
	var o mo.VirtualMachine
	if err := property.DefaultCollector(c.vc).RetrieveOne(ctx, obj.Reference(), vmProps, &o); err != nil {
		return hypervisor.VM{}, notFound(err)
	}
	vm := hypervisor.VM{
		Name:    o.Name,
		ID:      o.Self.Value,
		Running: o.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn,
	}
	var template string
	if o.Config != nil {
		for _, b := range o.Config.ExtraConfig {
			ov := b.GetOptionValue()
			s, _ := ov.Value.(string)
			switch ov.Key {
			case KeyOperation:
				vm.Operation = s
			case KeyFence:
				vm.Fence, _ = strconv.ParseUint(s, 10, 64)
			case KeyMethod:
				vm.Method = s
			case KeyTemplate:
				template = s
			}
		}
	}
	if o.Guest != nil {
		vm.Address = pickAddress(o.Guest.IpAddress, o.Guest.Net, nil)
		if vm.Address != "" && template != "" {
			// A clone mitosis made: never at its template's address.
			vm.Address = pickAddress(o.Guest.IpAddress, o.Guest.Net, c.addressesOf(ctx, template))
		}
	}
	if h := o.Runtime.Host; h != nil {
		name, err := c.hostName(ctx, *h)
		if err != nil {
			return hypervisor.VM{}, err
		}
		vm.Host = name
	}
	return vm, nil
}

// hostName returns a host's name; names are cached, hosts are few.
func (c *Client) hostName(ctx context.Context, ref types.ManagedObjectReference) (string, error) {
	c.hostMu.Lock()
	name, ok := c.hostNames[ref]
	c.hostMu.Unlock()
	if ok {
		return name, nil
	}
	var h mo.HostSystem
	if err := property.DefaultCollector(c.vc).RetrieveOne(ctx, ref, []string{"name"}, &h); err != nil {
		return "", fmt.Errorf("host %s: %w", ref.Value, err)
	}
	c.hostMu.Lock()
	c.hostNames[ref] = h.Name
	c.hostMu.Unlock()
	return h.Name, nil
}

func powerOn(ctx context.Context, vm *object.VirtualMachine) error {
	task, err := vm.PowerOn(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil && !fault.Is(err, &types.InvalidPowerState{}) {
		return fmt.Errorf("powering on: %w", err)
	}
	return nil
}

// notFound maps "no such managed object" to hypervisor.ErrNotFound.
func notFound(err error) error {
	if fault.Is(err, &types.ManagedObjectNotFound{}) {
		return fmt.Errorf("%w (%v)", hypervisor.ErrNotFound, err)
	}
	return err
}

func vmRef(id string) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VirtualMachine", Value: id}
}
