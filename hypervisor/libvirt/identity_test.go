package libvirt

import (
	"strings"
	"testing"

	lv "github.com/digitalocean/go-libvirt"
)

// A live definition as libvirt gives it, with two NICs on a bridge and a
// user-mode one (private to the VM, never isolated).
const twoNICs = `<domain type='qemu' id='3'>
  <name>mitosis-op-1</name>
  <devices>
    <interface type='bridge'>
      <mac address='52:54:00:aa:00:01'/>
      <source bridge='br0'/>
      <target dev='vnet3'/>
      <model type='virtio'/>
      <alias name='net0'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:AA:00:02'/>
      <source bridge='br1'/>
      <link state='up'/>
      <alias name='net1'/>
    </interface>
    <interface type='user'>
      <mac address='52:54:00:aa:00:03'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>`

func TestNICElementIsTheNICOfItsMAC(t *testing.T) {
	elem, err := nicElement(twoNICs, "52:54:00:aa:00:02")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(elem, "<interface type='bridge'>") || !strings.HasSuffix(elem, "</interface>") || !strings.Contains(elem, "br1") || strings.Contains(elem, "br0") {
		t.Errorf("the element of 52:54:00:aa:00:02 is\n%s", elem)
	}
	down := withLink(elem, "down")
	if strings.Count(down, "<link ") != 1 || !strings.HasSuffix(down, "<link state='down'/></interface>") {
		t.Errorf("with its link down:\n%s", down)
	}
	if up := withLink(down, "up"); strings.Count(up, "<link ") != 1 || !strings.Contains(up, "<link state='up'/>") {
		t.Errorf("with its link up again:\n%s", up)
	}
	if _, err := nicElement(twoNICs, "52:54:00:ff:ff:ff"); err == nil || !strings.Contains(err.Error(), "no interface with MAC 52:54:00:ff:ff:ff") {
		t.Errorf("an unknown MAC: %v", err)
	}
}

func TestTheSharedNICsAreTheOnesIsolated(t *testing.T) {
	d, err := parseDomain(twoNICs)
	if err != nil {
		t.Fatal(err)
	}
	var shared []string
	for _, n := range d.Devices.Interfaces {
		if n.shared() {
			shared = append(shared, n.MAC.Address)
		}
	}
	if strings.Join(shared, " ") != "52:54:00:aa:00:01 52:54:00:AA:00:02" {
		t.Errorf("shared NICs %v, want the two bridged ones", shared)
	}
	for _, c := range []struct {
		network string
		nics    []nicXML
		want    bool
	}{
		{CloneNetworkIsolate, d.Devices.Interfaces, true},
		{CloneNetworkIsolate, d.Devices.Interfaces[2:], false}, // user-mode only: nothing to isolate
		{CloneNetworkIsolate, nil, false},
		{CloneNetworkInherit, d.Devices.Interfaces, false},
	} {
		if got := (&Client{network: c.network}).isolating(c.nics); got != c.want {
			t.Errorf("isolating(%s, %d NICs) = %v, want %v", c.network, len(c.nics), got, c.want)
		}
	}
}

// The guest has taken its identity once every shared NIC is reported
// under the clone's MAC (in any case) and no interface holds an address
// of its template's: a re-probed NIC with the template's address put
// back (a static configuration) is not the clone's own.
func TestOwnIdentity(t *testing.T) {
	d, err := parseDomain(twoNICs)
	if err != nil {
		t.Fatal(err)
	}
	nics := d.Devices.Interfaces[:2]
	template := map[string]bool{"10.0.0.5": true}
	iface := func(name, mac string, addrs ...string) lv.DomainInterface {
		i := lv.DomainInterface{Name: name, Hwaddr: lv.OptString{mac}}
		for _, a := range addrs {
			i.Addrs = append(i.Addrs, lv.DomainIPAddr{Addr: a})
		}
		return i
	}
	lo := iface("lo", "00:00:00:00:00:00", "127.0.0.1")
	for _, c := range []struct {
		name   string
		ifaces []lv.DomainInterface
		want   string
	}{
		{"the template's MACs and address still", []lv.DomainInterface{lo, iface("eth0", "52:54:00:99:99:99", "10.0.0.5")}, "still holds its template's address 10.0.0.5"},
		{"one NIC re-probed", []lv.DomainInterface{lo, iface("eth0", "52:54:00:aa:00:01"), iface("eth1", "52:54:00:99:99:98")}, "no interface with the clone's MAC 52:54:00:AA:00:02"},
		{"re-probed, the template's address put back", []lv.DomainInterface{lo, iface("eth0", "52:54:00:aa:00:01", "10.0.0.5"), iface("eth1", "52:54:00:aa:00:02")}, "still holds its template's address"},
		{"both re-probed, no address yet", []lv.DomainInterface{lo, iface("eth0", "52:54:00:AA:00:01"), iface("eth1", "52:54:00:aa:00:02")}, ""},
		{"both re-probed, an address of its own", []lv.DomainInterface{lo, iface("eth0", "52:54:00:aa:00:01", "10.0.0.9"), iface("eth1", "52:54:00:aa:00:02")}, ""},
	} {
		got := ownIdentity(c.ifaces, nics, template)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// Only the interfaces of the domain's own MACs give its address: a live
// clone's guest may still name its NIC by its template's MAC, with its
// template's address on it.
func TestTheAgentsAddressIsAnInterfaceOfTheDomainsOwnMAC(t *testing.T) {
	d, err := parseDomain(twoNICs)
	if err != nil {
		t.Fatal(err)
	}
	ifaces := []lv.DomainInterface{
		{Name: "lo", Hwaddr: lv.OptString{"00:00:00:00:00:00"}, Addrs: []lv.DomainIPAddr{{Addr: "127.0.0.1"}}},
		{Name: "eth0", Hwaddr: lv.OptString{"52:54:00:99:99:99"}, Addrs: []lv.DomainIPAddr{{Addr: "10.0.0.5"}}},
		{Name: "eth1", Hwaddr: lv.OptString{"52:54:00:aa:00:02"}, Addrs: []lv.DomainIPAddr{{Addr: "10.0.0.9"}}},
		{Name: "tun0"},
	}
	if got := pickAddress(ownInterfaces(ifaces, d.Devices.Interfaces)); got != "10.0.0.9" {
		t.Errorf("address %q, want 10.0.0.9 (the NIC of the domain's MAC)", got)
	}
	if got := pickAddress(ownInterfaces(ifaces[:2], d.Devices.Interfaces)); got != "" {
		t.Errorf("address %q while only the template's MAC is reported, want none", got)
	}
}
