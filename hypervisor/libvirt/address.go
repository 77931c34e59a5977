package libvirt

import (
	"context"
	"net/netip"
	"strings"
	"time"

	lv "github.com/digitalocean/go-libvirt"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
)

// address is the running domain's address from Config.AddressSource, ""
// when it has none yet (or the source cannot tell: no lease, no guest
// agent). An IPv4 address is preferred; loopback and link-local ones are
// never reported.
func (c *Client) address(l *lv.Libvirt, dom lv.Domain) string {
	if !c.withAddr {
		return ""
	}
	ifaces, err := l.DomainInterfaceAddresses(dom, uint32(c.addrSource), 0)
	if err != nil {
		c.log.Debug("libvirt has no address for the domain yet", "vm", dom.Name, "source", c.cfg.AddressSource, "err", err)
		return ""
	}
	if c.addrSource == lv.DomainInterfaceAddressesSrcAgent {
		// The guest names its interfaces with the MACs its drivers hold:
		// a live clone's may still be its template's, with its
		// template's address on it. Only the domain's own MACs count.
		x, err := l.DomainGetXMLDesc(dom, 0)
		if err != nil {
			return ""
		}
		d, err := parseDomain(x)
		if err != nil {
			return ""
		}
		ifaces = ownInterfaces(ifaces, d.Devices.Interfaces)
	}
	return pickAddress(ifaces)
}

// ownInterfaces are those of the guest's interfaces whose MAC is one of
// the domain's NICs'.
func ownInterfaces(ifaces []lv.DomainInterface, nics []nicXML) []lv.DomainInterface {
	own := map[string]bool{}
	for _, n := range nics {
		own[strings.ToLower(n.MAC.Address)] = true
	}
	var out []lv.DomainInterface
	for _, i := range ifaces {
		if len(i.Hwaddr) > 0 && own[strings.ToLower(i.Hwaddr[0])] {
			out = append(out, i)
		}
	}
	return out
}

// pickAddress is the first IPv4 address of the interfaces that a peer can
// reach, else the first such IPv6 one.
func pickAddress(ifaces []lv.DomainInterface) string {
	var v6 string
	for _, iface := range ifaces {
		for _, a := range iface.Addrs {
			ip, err := netip.ParseAddr(a.Addr)
			if err != nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
				continue
			}
			if ip.Is4() {
				return ip.String()
			}
			if v6 == "" {
				v6 = ip.String()
			}
		}
	}
	return v6
}

// awaitAddress waits up to Config.AddressWait for a new clone's address.
func (c *Client) awaitAddress(ctx context.Context, vm hypervisor.VM) hypervisor.VM {
	wait := c.cfg.addressWait()
	if vm.Address != "" || !c.withAddr || wait <= 0 {
		return vm
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			c.log.Warn("libvirt clone has no address yet", "vm", vm.Name, "source", c.cfg.AddressSource, "waited", wait)
			return vm
		case <-tick.C:
		}
		l, done, err := c.conn(ctx)
		if err != nil {
			continue
		}
		if dom, err := l.DomainLookupByName(vm.Name); err == nil {
			vm.Address = c.address(l, dom)
		}
		_ = done(nil)
		if vm.Address != "" {
			return vm
		}
	}
}
