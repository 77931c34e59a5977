package libvirt

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	lv "github.com/digitalocean/go-libvirt"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
)

// coldClone makes a cold clone of the running template tmpl (Config.CloneMode
// "cold"): no memory is carried over. In steps:
//
//  1. read      the template's migratable XML (what a save image holds).
//  2. snapshot  a disk-only external snapshot of the template, without
//     libvirt metadata, so the images it ran on are frozen (the
//     live path's step 1 without the memory). Skipped on the test
//     driver, which opens no disk.
//  3. overlays  per cloned disk, ImageDir/NAME.TARGET.qcow2 on the frozen
//     image (on the test driver only named, not made).
//  4. define    the XML through cloneXML (new name, uuid, MACs, the overlays,
//     serial files of the clone, metadata with method cold-clone),
//     persistent, so that a retried Clone finds it (and starts it
//     if a crash came before the next step).
//  5. start     DomainCreate: the clone boots.
func (c *Client) coldClone(ctx context.Context, l *lv.Libvirt, tmpl lv.Domain, req hypervisor.CloneRequest, log *slog.Logger) (_ hypervisor.VM, err error) {
	start := time.Now()
	var took steps
	left := &leftovers{}
	defer func() {
		if err != nil {
			c.cleanup(l, left, log)
		}
	}()

	// 1. read
	t := time.Now()
	x, err := l.DomainGetXMLDesc(tmpl, lv.DomainXMLMigratable)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("template: %w", notFound(err))
	}
	td, err := parseDomain(x)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("template: %w", err)
	}
	id := c.cloneIdentity(req, MethodColdClone, left)
	var bases []diskXML
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
		bases = append(bases, d)
		tops[d.Target.Dev] = c.topPath(req.Template, d.Target.Dev)
		id.disks[d.Target.Dev] = c.overlayPath(req.Name, d.Target.Dev)
	}
	took.done("read", t)

	if c.opensDisks() && len(bases) > 0 {
		// 2. snapshot: freeze the images the template runs on
		t = time.Now()
		flags := uint32(lv.DomainSnapshotCreateDiskOnly | lv.DomainSnapshotCreateAtomic | lv.DomainSnapshotCreateNoMetadata)
		if _, err := l.DomainSnapshotCreateXML(tmpl, snapshotXML(req.Name, "", td.Devices.Disks, tops), flags); err != nil {
			return hypervisor.VM{}, fmt.Errorf("disk snapshot of the template: %w", unsupported(notFound(err)))
		}
		took.done("snapshot", t)
		log.Debug("libvirt template disk snapshot", "tops", tops)

		// 3. overlays on the frozen images (the template's sources until now)
		t = time.Now()
		for _, d := range bases {
			overlay := id.disks[d.Target.Dev]
			left.files = append(left.files, overlay)
			if err := c.createOverlay(ctx, overlay, d.Source.File, d.format()); err != nil {
				return hypervisor.VM{}, err
			}
		}
		took.done("overlays", t)
	} else if len(bases) > 0 {
		log.Debug("libvirt test driver opens no disk: the clone's overlays are named, not made", "disks", id.disks)
	}

	// 4. define
	def, err := cloneXML(x, id)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("template: %w", err)
	}
	dom, err := c.define(ctx, l, def, left, &took)
	if err != nil {
		return hypervisor.VM{}, err
	}

	// 5. start
	t = time.Now()
	if err := l.DomainCreate(dom); err != nil {
		return hypervisor.VM{}, fmt.Errorf("starting the clone: %w", err)
	}
	took.done("start", t)
	left = &leftovers{} // the clone runs: nothing to undo

	vm, err := c.read(l, dom)
	if err != nil {
		return hypervisor.VM{}, fmt.Errorf("reading the new clone: %w", err)
	}
	log.Info("libvirt cloned", append([]any{"id", vm.ID, "method", MethodColdClone, "took", time.Since(start).Round(time.Millisecond)}, took...)...)
	return vm, nil
}
