// Package libvirt is the libvirt/QEMU back-end of the hypervisor contract,
// over go-libvirt (libvirt's RPC protocol on its unix socket, or TLS).
//
// A clone is a live clone: it continues the template's running memory.
// libvirt has no such call, so Clone makes one in steps:
//
//  1. snapshot  a live external snapshot of the template, without libvirt
//     metadata: its memory goes to ImageDir/NAME.save, and each of its
//     writable disks goes on a new qcow2 top, so the image it ran on
//     until then is frozen. The template keeps running (~0.1-0.3 s).
//  2. overlays  per cloned disk, `qemu-img create -f qcow2 -b FROZEN -F FMT
//     ImageDir/NAME.TARGET.qcow2`.
//  3. rewrite   the domain XML inside NAME.save (libvirt restores an image
//     under the name and uuid it holds, and refuses another through its
//     dxml argument): new name, uuid and MACs, the overlays as disks,
//     file-backed serial ports on files of the clone, mitosis metadata.
//     The image's data block keeps its length (see saveimage.go).
//  4. define    the clone, persistent, from that XML, so a crash before the
//     next step leaves a domain a retried Clone recognizes and resumes.
//  5. restore   DomainRestoreFlags(NAME.save, RUNNING): QEMU loads the
//     memory and the clone runs on (~0.5 s under TCG); NAME.save is removed.
//
// Only steps 1 and 5 need a real QEMU: libvirt's test driver has neither
// external memory snapshots nor restore of a QEMU image. A live clone is
// only tried on the QEMU driver; on any other (the test driver) Clone
// fails up front with an error wrapping errors.ErrUnsupported that names
// the driver, leaving nothing.
//
// With Config.CloneMode "cold", Clone makes a cold clone instead, and
// never a live one: the template's definition (its migratable XML) under
// the clone's identity through the same rewrite, with the same metadata
// (VM.Method "cold-clone"), defined and then started, so it boots from
// disk without the template's memory. Its disks are overlays as a live
// clone's are, on images frozen by a disk-only external snapshot of the
// template; on the test driver, which never opens a disk, they are only
// named (ImageDir/NAME.TARGET.qcow2) and no file is made. InstantClone is
// always a live clone.
//
// Every domain Clone makes carries its operation and fence in its
// <metadata>, in the Namespace element; Lookup and Clone read them back.
package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	lv "github.com/digitalocean/go-libvirt"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
)

// Client is a connection to a libvirt daemon that implements the
// hypervisor roles. It is safe for concurrent use; calls for one name are
// serialized.
type Client struct {
	cfg  Config
	uri  *url.URL
	log  *slog.Logger
	host string

	// mode is Config.CloneMode, checked; driver is the connection's
	// driver as ConnectGetType names it ("QEMU", "TEST", …).
	mode   string
	driver string
	// addrSource is Config.AddressSource, checked; withAddr is false for
	// none.
	addrSource lv.DomainInterfaceAddressesSource
	withAddr   bool
	// network is Config.CloneNetwork, checked.
	network string

	// dialing serializes dials (see conn.go); smu guards s and closed.
	dialing chan struct{}
	smu     sync.Mutex
	s       *session
	closed  bool

	names keyedMutex

	// crashBeforeRestore makes Clone stop right after defining the clone
	// (before restoring or starting it), as if the process died there (nothing is cleaned up), for the test
	// of what a retried Clone does then.
	crashBeforeRestore bool
}

var errCrashed = errors.New("stopped before restore (test)")

var (
	_ hypervisor.Hypervisor    = (*Client)(nil)
	_ hypervisor.InstantCloner = (*Client)(nil)
)

// New checks cfg (Config.Validate, and that image_dir is a directory) and
// connects to the daemon of cfg.URI within ctx: a daemon that does not
// answer before ctx ends makes New fail with an error wrapping ctx's.
// Close disconnects.
func New(ctx context.Context, cfg Config) (_ *Client, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, err := cfg.connectURI()
	if err != nil {
		return nil, err
	}
	if err := cfg.checkImageDir(); err != nil {
		return nil, err
	}
	mode, err := cfg.cloneMode()
	if err != nil {
		return nil, err
	}
	src, withAddr, err := cfg.addressSource()
	if err != nil {
		return nil, err
	}
	network, err := cfg.cloneNetwork()
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, uri: u, mode: mode, addrSource: src, withAddr: withAddr, network: network,
		log: log.With("libvirt", u.Redacted()), dialing: make(chan struct{}, 1)}
	if noVerify(u) {
		c.log.Warn("libvirt TLS server certificate is not verified (no_verify=1)")
	}
	l, done, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		err = done(err)
		if err != nil {
			_ = c.Close()
		}
	}()
	c.host = cfg.Host
	if c.host == "" {
		if c.host, err = l.ConnectGetHostname(); err != nil {
			return nil, fmt.Errorf("libvirt: hostname: %w", err)
		}
	}
	if c.driver, err = l.ConnectGetType(); err != nil {
		return nil, fmt.Errorf("libvirt: driver type: %w", err)
	}
	c.log.Info("libvirt connected", "host", c.host, "driver", c.driver, "clone_mode", mode, "clone_network", network, "image_dir", cfg.ImageDir)
	if mode == CloneModeCold {
		c.log.Warn("libvirt clone_mode is cold: clones boot from disk without their template's memory")
	} else if !c.canLiveClone() {
		c.log.Warn("libvirt driver cannot live-clone; Clone will fail unless clone_mode is cold", "driver", c.driver)
	}
	return c, nil
}

// Clone keeps hypervisor.Cloner's contract: it returns the clone of this
// operation if it exists, else makes a live clone, or a cold one when
// Config.CloneMode says so (see the package doc).
func (c *Client) Clone(ctx context.Context, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	return c.cloneAs(ctx, req, c.mode)
}

// InstantClone keeps hypervisor.InstantCloner's contract: it is always a
// live clone, whatever Config.CloneMode says; where the driver cannot make
// one (the test driver) it fails with errors.ErrUnsupported.
func (c *Client) InstantClone(ctx context.Context, req hypervisor.CloneRequest) (hypervisor.VM, error) {
	return c.cloneAs(ctx, req, CloneModeLive)
}

func (c *Client) cloneAs(ctx context.Context, req hypervisor.CloneRequest, mode string) (hypervisor.VM, error) {
	if err := checkName(req.Name); err != nil {
		return hypervisor.VM{}, fmt.Errorf("cloning from %q: %w", req.Template, err)
	}
	if req.Operation == "" || req.Template == "" {
		return hypervisor.VM{}, fmt.Errorf("cloning %s from %q: a clone needs an operation and a template", req.Name, req.Template)
	}
	unlock := c.names.lock(req.Name)
	defer unlock()
	vm, err := c.clone(ctx, req, mode)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("cloning %s from %s: %w", req.Name, req.Template, err)
	}
	return c.awaitAddress(ctx, vm), nil
}

// canLiveClone reports whether the connection's driver can make a live
// clone: only QEMU's has live external memory snapshots and restores a
// QEMU save image.
func (c *Client) canLiveClone() bool { return strings.EqualFold(c.driver, "QEMU") }

// opensDisks reports whether the driver opens its domains' disk files:
// every driver but the test driver, which keeps domains in memory only.
func (c *Client) opensDisks() bool { return !strings.EqualFold(c.driver, "Test") }

// errNoLiveClone is the error of a live clone on a driver that has none.
func (c *Client) errNoLiveClone() error {
	return fmt.Errorf("%w: the libvirt %q driver cannot live-clone (no live external memory snapshot, no restore of a QEMU save image); set clone_mode: cold if a cold clone (booted from disk, without the template's memory) is acceptable",
		errors.ErrUnsupported, c.driver)
}

// steps times the steps of a clone, for the log line that reports it.
type steps []any

func (s *steps) done(name string, since time.Time) {
	*s = append(*s, name, time.Since(since).Round(time.Millisecond))
}

func (c *Client) clone(ctx context.Context, req hypervisor.CloneRequest, mode string) (_ hypervisor.VM, err error) {
	log := c.log.With("vm", req.Name, "template", req.Template, "op", req.Operation, "fence", req.Fence)
	l, done, err := c.conn(ctx)
	if err != nil {
		return hypervisor.VM{}, err
	}
	defer func() { err = done(err) }()
	if vm, ok, err := c.existing(ctx, l, req, log); ok || err != nil {
		if err == nil && mode == CloneModeLive && vm.Method == MethodColdClone {
			// An InstantClone finding the cold clone a Clone made: it
			// promised the template's memory, and this one has none.
			return hypervisor.VM{}, fmt.Errorf("%s (%s) of this operation is a cold clone, not a live one", req.Name, vm.ID)
		}
		return vm, err
	}
	tmpl, err := l.DomainLookupByName(req.Template)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("template: %w", notFound(err))
	}
	if st, err := state(l, tmpl); err != nil {
		return hypervisor.VM{}, fmt.Errorf("template: %w", err)
	} else if !poweredOn(st) {
		return hypervisor.VM{}, fmt.Errorf("template is %s, not running", stateName(st))
	}
	if mode == CloneModeCold {
		return c.coldClone(ctx, l, tmpl, req, log)
	}
	if !c.canLiveClone() {
		return hypervisor.VM{}, c.errNoLiveClone()
	}

	start := time.Now()
	var took steps
	save := c.savePath(req.Name)
	left := &leftovers{files: []string{save}}
	defer func() {
		if err != nil {
			c.cleanup(l, left, log)
		}
	}()

	// 1. snapshot
	t := time.Now()
	x, err := l.DomainGetXMLDesc(tmpl, 0)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("template: %w", notFound(err))
	}
	td, err := parseDomain(x)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("template: %w", err)
	}
	tops := map[string]string{}
	for _, d := range td.Devices.Disks {
		ok, err := d.cloned()
		if err != nil {
			return hypervisor.VM{}, fmt.Errorf("template: %w", err)
		}
		if !ok {
			continue
		}
		if !plainTarget.MatchString(d.Target.Dev) {
			return hypervisor.VM{}, fmt.Errorf("template: disk target %q is not a plain device name", d.Target.Dev)
		}
		tops[d.Target.Dev] = c.topPath(req.Template, d.Target.Dev)
	}
	// What the clone must not hold once its links are up, asked before
	// anything is made: no guest agent, no isolated clone.
	isolate := c.isolating(td.Devices.Interfaces)
	var templateAddrs map[string]bool
	if isolate {
		if templateAddrs, err = guestAddresses(l, tmpl); err != nil {
			return hypervisor.VM{}, fmt.Errorf("a live clone is kept off its template's networks until its guest takes its own MACs (clone_network: isolate), which needs the template's QEMU guest agent: %w", err)
		}
	}
	// A memory image left by an attempt that died before defining the
	// clone: no domain has this name (existing said so), so it is ours.
	if err := os.Remove(save); err != nil && !errors.Is(err, os.ErrNotExist) {
		return hypervisor.VM{}, fmt.Errorf("removing a stale memory image: %w", err)
	}
	flags := uint32(lv.DomainSnapshotCreateLive | lv.DomainSnapshotCreateAtomic | lv.DomainSnapshotCreateNoMetadata)
	if _, err := l.DomainSnapshotCreateXML(tmpl, snapshotXML(req.Name, save, td.Devices.Disks, tops), flags); err != nil {
		err = unsupported(notFound(err))
		if errors.Is(err, errors.ErrUnsupported) {
			err = fmt.Errorf("%w; set clone_mode: cold if a cold clone (booted from disk, without the template's memory) is acceptable", err)
		}
		return hypervisor.VM{}, fmt.Errorf("live snapshot of the template: %w", err)
	}
	took.done("snapshot", t)
	log.Debug("libvirt template snapshot", "memory", save, "tops", tops)

	// 2. overlays, on the images the snapshot froze (the image's XML names them)
	t = time.Now()
	img, err := saveImageXML(save)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("memory image: %w", err)
	}
	id := c.cloneIdentity(req, MethodLiveClone, left)
	imgDom, err := parseDomain(img)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("memory image: %w", err)
	}
	for _, d := range imgDom.Devices.Disks {
		if _, ok := tops[d.Target.Dev]; !ok {
			continue
		}
		overlay := c.overlayPath(req.Name, d.Target.Dev)
		left.files = append(left.files, overlay)
		if err := c.createOverlay(ctx, overlay, d.Source.File, d.format()); err != nil {
			return hypervisor.VM{}, err
		}
		id.disks[d.Target.Dev] = overlay
	}
	took.done("overlays", t)

	// 3. rewrite the image's XML
	t = time.Now()
	var def string
	err = rewriteSaveImage(save, func(x string) (string, error) {
		var err error
		def, err = cloneXML(x, id)
		return def, err
	})
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("rewriting the memory image: %w", err)
	}
	took.done("rewrite", t)

	// 4. define
	dom, err := c.define(ctx, l, def, left, &took)
	if err != nil {
		return hypervisor.VM{}, err
	}

	// 5. restore
	t = time.Now()
	restore := lv.DomainSaveRunning
	if isolate {
		restore = lv.DomainSavePaused // its links go down before it runs
	}
	if err := l.DomainRestoreFlags(save, nil, uint32(restore)); err != nil {
		return hypervisor.VM{}, fmt.Errorf("restoring the clone: %w", err)
	}
	took.done("restore", t)
	c.dropImage(save, log)
	if isolate {
		t = time.Now()
		if err := c.reidentify(ctx, l, dom, templateAddrs, log); err != nil {
			return hypervisor.VM{}, err // the clone is destroyed: it never had its own identity
		}
		took.done("identity", t)
	}
	left = &leftovers{} // the clone runs as itself: nothing to undo

	vm, err := c.read(l, dom)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("reading the new clone: %w", err)
	}
	log.Info("libvirt cloned", append([]any{"id", vm.ID, "method", MethodLiveClone, "took", time.Since(start).Round(time.Millisecond)}, took...)...)
	return vm, nil
}

// existing returns the clone of req's operation if one is made, running:
// one found paused is resumed, one found off (a crash between define and
// restore) is restored from its memory image, or booted from its overlay
// when that is gone. ok=false means no domain has req.Name; a domain of
// that name made for another operation is refused.
func (c *Client) existing(ctx context.Context, l *lv.Libvirt, req hypervisor.CloneRequest, log *slog.Logger) (hypervisor.VM, bool, error) {
	dom, err := l.DomainLookupByName(req.Name)
	if isCode(err, lv.ErrNoDomain) {
		return hypervisor.VM{}, false, nil
	}
	if err != nil {
		return hypervisor.VM{}, false, err
	}
	vm, err := c.read(l, dom)
	if errors.Is(err, hypervisor.ErrNotFound) {
		return hypervisor.VM{}, false, nil // destroyed meanwhile
	}
	if err != nil {
		return hypervisor.VM{}, false, err
	}
	if vm.Operation != req.Operation {
		return hypervisor.VM{}, false, fmt.Errorf("%s (%s) was made by operation %q: %w", req.Name, vm.ID, vm.Operation, hypervisor.ErrNameTaken)
	}
	st, err := state(l, dom)
	if err != nil {
		return hypervisor.VM{}, false, err
	}
	isolate, err := c.isolatedClone(l, dom, vm)
	if err != nil {
		return hypervisor.VM{}, false, err
	}
	switch st {
	case lv.DomainRunning, lv.DomainBlocked:
	case lv.DomainPaused:
		if !isolate { // else reidentify resumes it, its links down
			log.Info("libvirt clone already made but paused; resuming it", "id", vm.ID)
			if err := l.DomainResume(dom); err != nil {
				return hypervisor.VM{}, false, fmt.Errorf("resuming %s: %w", req.Name, err)
			}
		}
	default:
		if err := c.start(ctx, l, dom, vm.Method, isolate, log); err != nil {
			return hypervisor.VM{}, false, err
		}
	}
	if isolate {
		// Its template's addresses, if it still runs to say: else the
		// clone's MACs alone tell that it took its identity.
		tmpl, err := l.DomainLookupByName(req.Template)
		var addrs map[string]bool
		if err == nil {
			addrs, err = guestAddresses(l, tmpl)
		}
		if err != nil {
			log.Warn("libvirt could not read the template's addresses for a clone found already made", "err", err)
		}
		if err := c.reidentify(ctx, l, dom, addrs, log); err != nil {
			return hypervisor.VM{}, false, err
		}
	}
	vm, err = c.read(l, dom)
	if err != nil {
		return hypervisor.VM{}, false, err
	}
	log.Info("libvirt clone already made", "id", vm.ID)
	return vm, true, nil
}

// isolatedClone reports whether a clone found already made is a live
// clone kept off its networks until it takes its own identity.
func (c *Client) isolatedClone(l *lv.Libvirt, dom lv.Domain, vm hypervisor.VM) (bool, error) {
	// Only a QEMU guest continues its template's memory (a driver without
	// live clones has none to continue).
	if vm.Method != MethodLiveClone || c.network != CloneNetworkIsolate || !c.canLiveClone() {
		return false, nil
	}
	x, err := l.DomainGetXMLDesc(dom, 0)
	if err != nil {
		return false, notFound(err)
	}
	d, err := parseDomain(x)
	if err != nil {
		return false, err
	}
	return c.isolating(d.Devices.Interfaces), nil
}

// start starts a clone found off: from its memory image if it still has
// one (it was defined but not yet restored; paused when it is to be
// isolated), else by booting its disks (what a cold clone defined but not
// yet started always is).
func (c *Client) start(ctx context.Context, l *lv.Libvirt, dom lv.Domain, method string, paused bool, log *slog.Logger) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if method == MethodColdClone {
		log.Info("libvirt cold clone already made but off; starting it", "method", method)
		if err := l.DomainCreate(dom); err != nil {
			return fmt.Errorf("starting %s: %w", dom.Name, err)
		}
		return nil
	}
	save := c.savePath(dom.Name)
	if x, err := saveImageXML(save); err == nil {
		if d, err := parseDomain(x); err == nil && d.Name == dom.Name {
			log.Info("libvirt clone already made but off; restoring its memory image", "image", save)
			flags := lv.DomainSaveRunning
			if paused {
				flags = lv.DomainSavePaused
			}
			if err := l.DomainRestoreFlags(save, nil, uint32(flags)); err != nil {
				return fmt.Errorf("restoring %s: %w", dom.Name, err)
			}
			c.dropImage(save, log)
			return nil
		}
	}
	log.Warn("libvirt clone already made but off, without its memory image; booting it from its disks", "vm", dom.Name)
	if err := l.DomainCreate(dom); err != nil {
		return fmt.Errorf("starting %s: %w", dom.Name, err)
	}
	return nil
}

// dropImage removes a memory image once its clone runs: it is as large as
// the guest's memory and nothing reads it again.
func (c *Client) dropImage(path string, log *slog.Logger) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("libvirt could not remove a used memory image; Destroy removes it", "image", path, "err", err)
	}
}

// define is the step both clone paths share: it defines the clone's
// domain from def (the cold path then starts it, the live one restores its
// memory into it) and gives the domain to left, undone if the clone fails.
// With crashBeforeRestore (tests) it stops there as a crash would, leaving
// the domain defined. It does not return a domain to start once ctx is
// done.
func (c *Client) define(ctx context.Context, l *lv.Libvirt, def string, left *leftovers, took *steps) (lv.Domain, error) {
	t := time.Now()
	dom, err := l.DomainDefineXML(def)
	if err != nil {
		return lv.Domain{}, fmt.Errorf("defining the clone: %w", err)
	}
	left.domain = &dom
	took.done("define", t)
	if c.crashBeforeRestore {
		*left = leftovers{}
		return lv.Domain{}, errCrashed
	}
	if err := ctx.Err(); err != nil {
		return lv.Domain{}, err
	}
	return dom, nil
}

// leftovers are what a failed clone made: removed before Clone returns.
type leftovers struct {
	domain *lv.Domain
	files  []string
}

func (c *Client) cleanup(l *lv.Libvirt, left *leftovers, log *slog.Logger) {
	if left.domain != nil {
		_ = l.DomainDestroy(*left.domain)
		if err := undefine(l, *left.domain); err != nil {
			log.Warn("libvirt could not undefine a half-made clone", "vm", left.domain.Name, "err", err)
		}
	}
	for _, p := range left.files {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("libvirt could not remove a half-made clone's file", "file", p, "err", err)
		}
	}
}

// Destroy keeps hypervisor.Destroyer's contract: it destroys the domain
// (if it runs), undefines it with its managed save, snapshot and
// checkpoint metadata and NVRAM, and removes its files in ImageDir that no
// other domain uses (its overlays, memory image, serial logs, and frozen
// images only its own disks were on). A missing domain is success; its
// leftover files are still removed.
func (c *Client) Destroy(ctx context.Context, name string) error {
	unlock := c.names.lock(name)
	defer unlock()
	if err := c.destroy(ctx, name); err != nil {
		return fmt.Errorf("destroying %s: %w", name, err)
	}
	return nil
}

func (c *Client) destroy(ctx context.Context, name string) (err error) {
	l, done, err := c.conn(ctx)
	if err != nil {
		return err
	}
	defer func() { err = done(err) }()
	start := time.Now()
	var files []string
	dom, err := l.DomainLookupByName(name)
	switch {
	case isCode(err, lv.ErrNoDomain):
		c.log.Debug("libvirt destroy: no such domain", "vm", name)
	case err != nil:
		return err
	default:
		x, err := l.DomainGetXMLDesc(dom, 0)
		if err != nil && !isCode(err, lv.ErrNoDomain) {
			return err
		}
		files = c.diskFiles(x)
		c.shutdown(ctx, l, dom)
		t := time.Now()
		if err := l.DomainDestroy(dom); err != nil && !isCode(err, lv.ErrNoDomain) && !isCode(err, lv.ErrOperationInvalid) {
			return fmt.Errorf("stopping: %w", err)
		}
		c.log.Debug("libvirt destroy: stopped", "vm", name, "took", time.Since(t).Round(time.Millisecond))
		if err := undefine(l, dom); err != nil {
			return err
		}
	}
	if checkName(name) == nil {
		files = append(files, c.namedFiles(name)...)
	}
	removed, err := c.removeUnused(l, files)
	if err != nil {
		return err
	}
	if dom.Name != "" || len(removed) > 0 {
		c.log.Info("libvirt destroyed", "vm", name, "id", uuidString(dom.UUID), "files", removed, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// shutdown asks a running guest, through its QEMU guest agent, to shut
// down, and waits up to ShutdownTimeout for it to be off. A guest without
// an agent (or that does not answer) is left running, for Destroy to stop.
func (c *Client) shutdown(ctx context.Context, l *lv.Libvirt, dom lv.Domain) {
	wait := c.cfg.shutdownTimeout()
	if st, err := state(l, dom); err != nil || !poweredOn(st) || wait <= 0 {
		return
	}
	start := time.Now()
	if err := l.DomainShutdownFlags(dom, lv.DomainShutdownGuestAgent); err != nil {
		c.log.Debug("libvirt destroy: the guest agent takes no shutdown; pulling the plug", "vm", dom.Name, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for ctx.Err() == nil {
		if st, err := state(l, dom); err != nil || !poweredOn(st) {
			c.log.Debug("libvirt destroy: the guest shut down", "vm", dom.Name, "took", time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.log.Warn("libvirt destroy: the guest did not shut down within shutdown_timeout; pulling the plug", "vm", dom.Name, "waited", wait)
}

// undefine removes a domain's persistent definition with everything
// libvirt keeps for it. A transient domain is gone once destroyed.
func undefine(l *lv.Libvirt, dom lv.Domain) error {
	flags := lv.DomainUndefineManagedSave | lv.DomainUndefineSnapshotsMetadata | lv.DomainUndefineCheckpointsMetadata | lv.DomainUndefineNvram
	err := l.DomainUndefineFlags(dom, flags)
	if isCode(err, lv.ErrInvalidArg) && strings.Contains(err.Error(), "unsupported flags") {
		// A driver without those (the test driver has no NVRAM): it keeps
		// none of what they remove.
		err = l.DomainUndefineFlags(dom, lv.DomainUndefineManagedSave|lv.DomainUndefineSnapshotsMetadata)
	}
	if err == nil || isCode(err, lv.ErrNoDomain) || isCode(err, lv.ErrOperationInvalid) {
		return nil
	}
	return fmt.Errorf("undefining: %w", err)
}

// diskFiles returns the files in ImageDir of a domain's disk chains.
func (c *Client) diskFiles(domXML string) []string {
	d, err := parseDomain(domXML)
	if err != nil {
		return nil
	}
	var out []string
	for _, disk := range d.Devices.Disks {
		if disk.Type != "file" || disk.Source.File == "" {
			continue
		}
		for _, p := range chain(disk.Source.File) {
			if inDir(c.cfg.ImageDir, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

var (
	plainName   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	plainTarget = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	// The files of NAME, after "NAME": see files.go.
	ownSuffix = regexp.MustCompile(`^(\.save|(\.[0-9]+)?\.log|\.[A-Za-z0-9_-]+(\.[0-9a-f]{8})?\.qcow2)$`)
)

// checkName accepts the names Clone gives domains: they become file names.
func checkName(name string) error {
	if !plainName.MatchString(name) {
		return fmt.Errorf("name %q: want 1-128 letters, digits, '-' or '_'", name)
	}
	return nil
}

// namedFiles returns the files in ImageDir named after name.
func (c *Client) namedFiles(name string) []string {
	entries, err := os.ReadDir(c.cfg.ImageDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), name)
		if ok && !e.IsDir() && ownSuffix.MatchString(rest) {
			out = append(out, filepath.Join(c.cfg.ImageDir, e.Name()))
		}
	}
	return out
}

// removeUnused removes those of files that no domain's disk chain uses
// (a destroyed clone's frozen image may be another clone's base).
func (c *Client) removeUnused(l *lv.Libvirt, files []string) ([]string, error) {
	if len(files) == 0 {
		return nil, nil
	}
	doms, _, err := l.ConnectListAllDomains(1, 0)
	if err != nil {
		return nil, fmt.Errorf("listing domains: %w", err)
	}
	used := map[string]bool{}
	for _, d := range doms {
		for _, flags := range []lv.DomainXMLFlags{0, lv.DomainXMLInactive} {
			x, err := l.DomainGetXMLDesc(d, flags)
			if isCode(err, lv.ErrNoDomain) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", d.Name, err)
			}
			for _, p := range c.diskFiles(x) {
				used[p] = true
			}
		}
	}
	var removed []string
	seen := map[string]bool{}
	for _, p := range files {
		if used[p] || seen[p] {
			continue
		}
		seen[p] = true
		err := os.Remove(p)
		switch {
		case err == nil:
			removed = append(removed, filepath.Base(p))
		case !errors.Is(err, os.ErrNotExist):
			return removed, err
		}
	}
	return removed, nil
}

// Lookup keeps hypervisor.Finder's contract.
func (c *Client) Lookup(ctx context.Context, name string) (hypervisor.VM, error) {
	vm, err := c.lookup(ctx, name)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("looking up %s: %w", name, err)
	}
	return vm, nil
}

func (c *Client) lookup(ctx context.Context, name string) (_ hypervisor.VM, err error) {
	l, done, err := c.conn(ctx)
	if err != nil {
		return hypervisor.VM{}, err
	}
	defer func() { err = done(err) }()
	dom, err := l.DomainLookupByName(name)
	if err != nil {
		return hypervisor.VM{}, notFound(err)
	}
	return c.read(l, dom)
}

// read reads a domain's state and mitosis metadata.
func (c *Client) read(l *lv.Libvirt, dom lv.Domain) (hypervisor.VM, error) {
	st, err := state(l, dom)
	if err != nil {
		return hypervisor.VM{}, err
	}
	vm := hypervisor.VM{Name: dom.Name, ID: uuidString(dom.UUID), Host: c.host, Running: poweredOn(st)}
	if vm.Running {
		vm.Address = c.address(l, dom)
	}
	s, err := l.DomainGetMetadata(dom, int32(lv.DomainMetadataElement), lv.OptString{Namespace}, 0)
	switch {
	case isCode(err, lv.ErrNoDomainMetadata):
		return vm, nil // not made by mitosis
	case err != nil:
		return hypervisor.VM{}, fmt.Errorf("metadata of %s: %w", dom.Name, notFound(err))
	}
	m, err := parseMeta(s)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("%s: %w", dom.Name, err)
	}
	vm.Operation, vm.Fence, vm.Method = m.Operation, m.Fence, m.Method
	return vm, nil
}

func state(l *lv.Libvirt, dom lv.Domain) (lv.DomainState, error) {
	st, _, err := l.DomainGetState(dom, 0)
	if err != nil {
		return 0, notFound(err)
	}
	return lv.DomainState(st), nil
}

// poweredOn is VM.Running: a paused or suspended guest is still on.
func poweredOn(st lv.DomainState) bool {
	switch st {
	case lv.DomainRunning, lv.DomainBlocked, lv.DomainPaused, lv.DomainShutdown, lv.DomainPmsuspended:
		return true
	}
	return false
}

func stateName(st lv.DomainState) string {
	switch st {
	case lv.DomainRunning:
		return "running"
	case lv.DomainBlocked:
		return "blocked"
	case lv.DomainPaused:
		return "paused"
	case lv.DomainShutdown:
		return "shutting down"
	case lv.DomainShutoff:
		return "shut off"
	case lv.DomainCrashed:
		return "crashed"
	case lv.DomainPmsuspended:
		return "suspended"
	}
	return fmt.Sprintf("in state %d", st)
}

func uuidString(u lv.UUID) string {
	if u == (lv.UUID{}) {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func isCode(err error, code lv.ErrorNumber) bool {
	var e lv.Error
	return errors.As(err, &e) && e.Code == uint32(code)
}

// notFound maps libvirt's "no such domain" to hypervisor.ErrNotFound.
func notFound(err error) error {
	if isCode(err, lv.ErrNoDomain) {
		return fmt.Errorf("%w (%v)", hypervisor.ErrNotFound, err)
	}
	return err
}

// unsupported maps a driver's "cannot do that" to errors.ErrUnsupported.
func unsupported(err error) error {
	switch {
	case isCode(err, lv.ErrNoSupport), isCode(err, lv.ErrConfigUnsupported), isCode(err, lv.ErrOperationUnsupported),
		isCode(err, lv.ErrInvalidArg) && strings.Contains(err.Error(), "unsupported flags"):
		return fmt.Errorf("%w: %v", errors.ErrUnsupported, err)
	}
	return err
}

// keyedMutex serializes calls per name, so that two calls for one clone
// never interleave their steps (they share the clone's file names).
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
