package libvirt

// A live clone's own network identity (docs/hypervisors.md).
//
// A live clone continues its template's memory, and with it its guest's
// network configuration: the template's MAC in the NIC driver, the
// template's address on the interface. Restored with its links up, it
// would answer ARP for its template's address, and send from it, at once.
// So, for the NICs on a shared network, Clone restores the clone paused,
// sets their links down, and only then lets it run:
//
//	restore (paused) ─► links down ─► resume ─► guest agent reports every
//	NIC under the clone's MAC, none of the template's addresses ─► links up
//
// The guest sees its carriers drop, forgets its addresses and re-probes
// its NICs, which read the MACs the clone's definition gives them; the
// QEMU guest agent says when it has; then the links go up and the guest
// leases addresses of its own. Until then, whatever the guest sends is
// dropped by QEMU, and nothing reaches it.

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	lv "github.com/digitalocean/go-libvirt"
)

// isolating reports whether a live clone of a template with these NICs
// is kept off the network until it takes its own identity.
func (c *Client) isolating(nics []nicXML) bool {
	return c.network == CloneNetworkIsolate && slices.ContainsFunc(nics, nicXML.shared)
}

// guestInterfaces asks the guest agent for the guest's interfaces.
func guestInterfaces(l *lv.Libvirt, dom lv.Domain) ([]lv.DomainInterface, error) {
	ifaces, err := l.DomainInterfaceAddresses(dom, uint32(lv.DomainInterfaceAddressesSrcAgent), 0)
	if err != nil {
		return nil, fmt.Errorf("the QEMU guest agent of %s: %w", dom.Name, err)
	}
	return ifaces, nil
}

// guestAddresses are the addresses a peer could reach the guest at, as
// its agent reports them: what a clone of it must not hold.
func guestAddresses(l *lv.Libvirt, dom lv.Domain) (map[string]bool, error) {
	ifaces, err := guestInterfaces(l, dom)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, iface := range ifaces {
		for _, a := range iface.Addrs {
			if reachable(a.Addr) {
				out[a.Addr] = true
			}
		}
	}
	return out, nil
}

func reachable(addr string) bool {
	ip, err := netip.ParseAddr(addr)
	return err == nil && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !ip.IsUnspecified()
}

// reidentify brings a restored live clone onto its template's networks
// under its own identity. A paused clone has its shared links set down
// and is resumed; while any is down, it waits (up to IdentityWait) for
// the guest agent to report every shared NIC under its clone's MAC and no
// address of template's, then sets the links up. A clone whose shared
// links are all up is left alone: it has taken its identity (or was never
// isolated). So it may be run again on a clone found after a crash.
func (c *Client) reidentify(ctx context.Context, l *lv.Libvirt, dom lv.Domain, template map[string]bool, log *slog.Logger) error {
	x, err := l.DomainGetXMLDesc(dom, 0)
	if err != nil {
		return fmt.Errorf("reading the clone's definition: %w", notFound(err))
	}
	d, err := parseDomain(x)
	if err != nil {
		return err
	}
	nics := slices.DeleteFunc(d.Devices.Interfaces, func(n nicXML) bool { return !n.shared() })
	st, err := state(l, dom)
	if err != nil {
		return err
	}
	if st == lv.DomainPaused {
		for _, n := range nics {
			if err := setLink(l, dom, x, n.MAC.Address, "down"); err != nil {
				return err
			}
		}
		if err := l.DomainResume(dom); err != nil {
			return fmt.Errorf("resuming the clone: %w", err)
		}
	} else if !slices.ContainsFunc(nics, nicXML.down) {
		return nil
	}
	start := time.Now()
	if err := c.awaitOwnMACs(ctx, l, dom, nics, template); err != nil {
		return err
	}
	x, err = l.DomainGetXMLDesc(dom, 0)
	if err != nil {
		return fmt.Errorf("reading the clone's definition: %w", notFound(err))
	}
	for _, n := range nics {
		if err := setLink(l, dom, x, n.MAC.Address, "up"); err != nil {
			return err
		}
	}
	log.Info("libvirt clone took its own MACs; links up", "took", time.Since(start).Round(time.Millisecond), "nics", len(nics))
	return nil
}

// awaitOwnMACs polls the guest agent until the guest reports every NIC
// under its clone's MAC and none of its interfaces holds an address of
// the template's, or IdentityWait passes.
func (c *Client) awaitOwnMACs(ctx context.Context, l *lv.Libvirt, dom lv.Domain, nics []nicXML, template map[string]bool) error {
	wait := c.cfg.identityWait()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	why := "no answer yet"
	for {
		ifaces, err := guestInterfaces(l, dom)
		if err == nil {
			if why = ownIdentity(ifaces, nics, template); why == "" {
				return nil
			}
		} else {
			why = err.Error()
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("the clone's guest did not take its own MACs within identity_wait %s (its links stay down; %s): is the QEMU guest agent running in the template, and does its guest re-probe a NIC whose carrier drops?", wait, why)
			}
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ownIdentity says what keeps the guest's interfaces from being the
// clone's own, "" when nothing does.
func ownIdentity(ifaces []lv.DomainInterface, nics []nicXML, template map[string]bool) string {
	reported := map[string]bool{}
	for _, iface := range ifaces {
		for _, mac := range iface.Hwaddr {
			reported[strings.ToLower(mac)] = true
		}
		for _, a := range iface.Addrs {
			if template[a.Addr] {
				return fmt.Sprintf("interface %s still holds its template's address %s", iface.Name, a.Addr)
			}
		}
	}
	for _, n := range nics {
		if !reported[strings.ToLower(n.MAC.Address)] {
			return fmt.Sprintf("no interface with the clone's MAC %s yet", n.MAC.Address)
		}
	}
	return ""
}

// setLink sets the link of the running domain's NIC of that MAC up or
// down, as `virsh domif-setlink` does: libvirt takes the NIC's whole
// element, as the live definition x has it, with the new <link>.
func setLink(l *lv.Libvirt, dom lv.Domain, x, mac, state string) error {
	elem, err := nicElement(x, mac)
	if err != nil {
		return err
	}
	if err := l.DomainUpdateDeviceFlags(dom, withLink(elem, state), lv.DomainDeviceModifyLive); err != nil {
		return fmt.Errorf("setting the link of %s %s: %w", mac, state, err)
	}
	return nil
}

// withLink is a NIC's element with its <link> in state.
func withLink(elem, state string) string {
	elem = linkElement.ReplaceAllString(elem, "")
	i := strings.LastIndex(elem, "</interface>")
	return elem[:i] + "<link state='" + state + "'/>" + elem[i:]
}

var linkElement = regexp.MustCompile(`<link\b[^>]*/>`)

// nicElement returns the raw <interface> element of the domain XML x
// whose MAC is mac.
func nicElement(x, mac string) (string, error) {
	d := xml.NewDecoder(strings.NewReader(x))
	var path []string
	start := -1
	for {
		before := int(d.InputOffset())
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("the domain has no interface with MAC %s", mac)
		}
		if err != nil {
			return "", fmt.Errorf("domain XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			path = append(path, t.Name.Local)
			if strings.Join(path, "/") == "domain/devices/interface" {
				start = before
			}
		case xml.EndElement:
			if strings.Join(path, "/") == "domain/devices/interface" {
				elem := x[start:d.InputOffset()]
				var n nicXML
				if err := xml.Unmarshal([]byte(elem), &n); err == nil && strings.EqualFold(n.MAC.Address, mac) {
					return elem, nil
				}
			}
			path = path[:len(path)-1]
		}
	}
}
