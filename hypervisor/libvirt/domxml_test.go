package libvirt

import (
	"regexp"
	"strings"
	"testing"
)

func testIdentity(dir string) identity {
	c := &Client{cfg: Config{ImageDir: dir}}
	return identity{
		name: "mitosis-op-1", uuid: "11111111-2222-4333-8444-555555555555",
		disks:   map[string]string{"vda": dir + "/mitosis-op-1.vda.qcow2"},
		chardev: c.chardevPaths("mitosis-op-1"),
		meta:    meta{Operation: "op-1", Fence: 7, Template: "tmpl", Method: MethodLiveClone},
	}
}

func TestCloneXMLRealImage(t *testing.T) {
	in := readTestdata(t, "save-template.xml")
	out, err := cloneXML(in, testIdentity("/img"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDomain(out)
	if err != nil {
		t.Fatalf("clone XML does not parse: %v\n%s", err, out)
	}
	if d.Name != "mitosis-op-1" || d.UUID != "11111111-2222-4333-8444-555555555555" {
		t.Errorf("name/uuid = %s/%s", d.Name, d.UUID)
	}
	if len(d.Devices.Disks) != 1 || d.Devices.Disks[0].Source.File != "/img/mitosis-op-1.vda.qcow2" {
		t.Errorf("disks = %+v, want vda on the overlay", d.Devices.Disks)
	}
	if strings.Contains(out, "backingStore") {
		t.Errorf("the template's backing chain (<backingStore/>: none!) was kept; the overlay would lose its base")
	}
	if strings.Contains(out, "52:54:00:60:11:60") || !regexp.MustCompile(`<mac address='52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}'/>`).MatchString(out) {
		t.Errorf("MAC not replaced by a fresh 52:54:00 one")
	}
	if strings.Count(out, "<source path='/img/mitosis-op-1.log'/>") != 2 || strings.Contains(out, "tmpl.log") {
		t.Errorf("serial and console should both move to the clone's one log file:\n%s", out)
	}
	m := regexp.MustCompile(`(?s)<metadata>(.*)</metadata>`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no metadata:\n%s", out)
	}
	got, err := parseMeta(m[1])
	if err != nil || got.Operation != "op-1" || got.Fence != 7 || got.Template != "tmpl" || got.Method != MethodLiveClone {
		t.Errorf("metadata = %+v, %v", got, err)
	}

	// Everything else stays byte for byte: undo the edits and compare.
	for _, r := range [][2]string{
		{"<name>mitosis-op-1</name>", "<name>tmpl</name>"},
		{"11111111-2222-4333-8444-555555555555", "af18f82d-1800-4fb5-95ab-4dde569f7ee0"},
		{"<source file='/img/mitosis-op-1.vda.qcow2'/>", "<source file='/tmp/qx/base.qcow2'/>\n      <backingStore/>"},
		{"/img/mitosis-op-1.log", "/tmp/qx/tmpl.log"},
		{"<metadata>" + m[1] + "</metadata>", ""},
	} {
		out = strings.ReplaceAll(out, r[0], r[1])
	}
	out = regexp.MustCompile(`52:54:00:[0-9a-f:]{8}`).ReplaceAllString(out, "52:54:00:60:11:60")
	if out != in {
		t.Errorf("clone XML differs from the template's beyond its identity:\n%s", out)
	}
}

func TestCloneXMLOfACloneReplacesOnlyMitosisMetadata(t *testing.T) {
	in := `<domain type='qemu'>
  <name>mitosis-op-0</name>
  <uuid>af18f82d-1800-4fb5-95ab-4dde569f7ee0</uuid>
  <metadata>
    <app:info xmlns:app="https://example.com/app">keep me</app:info>
    <mitosis:vm xmlns:mitosis="https://mitosis-autoscaler.dev/xmlns/vm/1"><mitosis:operation>op-0</mitosis:operation><mitosis:fence>1</mitosis:fence></mitosis:vm>
  </metadata>
  <seclabel type='dynamic' model='dac' relabel='yes'>
    <label>+64055:+64055</label>
    <imagelabel>+64055:+64055</imagelabel>
  </seclabel>
  <devices>
    <disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='hdc'/><readonly/></disk>
    <disk type='file' device='disk'><driver type='qcow2'/><source file='/img/mitosis-op-0.vda.qcow2'/>
      <backingStore type='file'><format type='qcow2'/><source file='/img/base.qcow2'/><backingStore/></backingStore>
      <target dev='vda'/></disk>
    <channel type='unix'><source mode='bind' path='/run/x.sock'/><target type='virtio'/></channel>
    <serial type='pty'><source path='/dev/pts/3'/><log file='/var/log/tmpl-serial.log' append='on'/></serial>
  </devices>
</domain>`
	out, err := cloneXML(in, testIdentity("/img"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `<app:info xmlns:app="https://example.com/app">keep me</app:info>`) {
		t.Errorf("another application's metadata was lost:\n%s", out)
	}
	if strings.Count(out, Namespace) != 1 || strings.Contains(out, "op-0</mitosis:operation>") {
		t.Errorf("want exactly the clone's own mitosis element:\n%s", out)
	}
	if strings.Contains(out, "<label>") || strings.Contains(out, "imagelabel") || !strings.Contains(out, "<seclabel type='dynamic' model='dac' relabel='yes'>") {
		t.Errorf("dynamic labels should go (libvirt makes new ones), the seclabel stay:\n%s", out)
	}
	if !strings.Contains(out, "<source file='/iso/x.iso'/>") {
		t.Errorf("the CD-ROM is not cloned and must stay as it was")
	}
	if strings.Contains(out, "backingStore") || !strings.Contains(out, "<source file='/img/mitosis-op-1.vda.qcow2'/>") {
		t.Errorf("the clone's disk should be its overlay without the old chain:\n%s", out)
	}
	if !strings.Contains(out, "path='/run/x.sock'") || !strings.Contains(out, "path='/dev/pts/3'") {
		t.Errorf("only file-backed character devices move")
	}
	if !strings.Contains(out, "<log file='/img/mitosis-op-1.log' append='on'/>") {
		t.Errorf("a chardev's log file should move to the clone's:\n%s", out)
	}
}

func TestCloneXMLAddsMetadata(t *testing.T) {
	for name, in := range map[string]string{
		"none":         `<domain><name>a</name><uuid>u</uuid><devices/></domain>`,
		"self-closing": `<domain><name>a</name><uuid>u</uuid><metadata/><devices/></domain>`,
		"after uuid":   `<domain><name>a</name><uuid>u</uuid><title>t</title><metadata></metadata></domain>`,
	} {
		t.Run(name, func(t *testing.T) {
			out, err := cloneXML(in, testIdentity("/img"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(out, "<metadata>") != 1 || strings.Count(out, Namespace) != 1 {
				t.Errorf("want one metadata element holding one mitosis element:\n%s", out)
			}
			if _, err := parseDomain(out); err != nil {
				t.Errorf("%v\n%s", err, out)
			}
		})
	}
	if _, err := cloneXML(`<domain><name>a</name></domain>`, testIdentity("/img")); err == nil {
		t.Errorf("a domain without uuid should be refused")
	}
	if _, err := cloneXML(`<domain><name>a</name><uuid>`, testIdentity("/img")); err == nil {
		t.Errorf("broken XML should be refused")
	}
}

func TestMetaRoundTrip(t *testing.T) {
	m := meta{Operation: `op<&>"'`, Fence: 1<<63 + 5, Template: "t", Method: MethodLiveClone}
	got, err := parseMeta(m.element())
	if err != nil || got.Operation != m.Operation || got.Fence != m.Fence || got.Template != "t" || got.Method != MethodLiveClone {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	// libvirt hands the element back reformatted, without its namespace.
	got, err = parseMeta(`<vm>
  <operation>op-9</operation>
  <fence>3</fence>
</vm>`)
	if err != nil || got.Operation != "op-9" || got.Fence != 3 {
		t.Fatalf("libvirt's form: %+v, %v", got, err)
	}
	if _, err := parseMeta(`<vm><fence>-1</fence></vm>`); err == nil {
		t.Errorf("a fence that is not a uint64 should not parse")
	}
}

func TestDiskCloned(t *testing.T) {
	cases := []struct {
		name string
		disk string
		want bool
		err  string
	}{
		{"qcow2 file", `<disk type='file' device='disk'><source file='/a'/><target dev='vda'/></disk>`, true, ""},
		{"cdrom", `<disk type='file' device='cdrom'><target dev='hdc'/></disk>`, false, ""},
		{"read-only", `<disk type='file' device='disk'><source file='/a'/><target dev='vdb'/><readonly/></disk>`, false, ""},
		{"shareable", `<disk type='file' device='disk'><source file='/a'/><target dev='vdb'/><shareable/></disk>`, false, ""},
		{"block device", `<disk type='block' device='disk'><source dev='/dev/sdb'/><target dev='vdb'/></disk>`, false, `type "block"`},
		{"network", `<disk type='network' device='disk'><target dev='vdb'/></disk>`, false, `type "network"`},
		{"transient", `<disk type='file' device='disk'><source file='/a'/><target dev='vdb'/><transient/></disk>`, false, "transient"},
		{"no source", `<disk type='file' device='disk'><target dev='vdb'/></disk>`, false, "no source"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := parseDomain("<domain><devices>" + c.disk + "</devices></domain>")
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Devices.Disks[0].cloned()
			if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
				t.Errorf("cloned() = %v, %v; want %v, error containing %q", got, err, c.want, c.err)
			}
		})
	}
}

func TestSnapshotXML(t *testing.T) {
	d, err := parseDomain(`<domain><devices>
<disk type='file' device='disk'><source file='/a'/><target dev='vda'/></disk>
<disk type='file' device='cdrom'><target dev='hdc'/></disk></devices></domain>`)
	if err != nil {
		t.Fatal(err)
	}
	got := snapshotXML("mitosis-op-1", "/img/mitosis-op-1.save", d.Devices.Disks, map[string]string{"vda": "/img/t.vda.0a0b0c0d.qcow2"})
	want := "<domainsnapshot><name>mitosis-op-1</name><memory snapshot='external' file='/img/mitosis-op-1.save'/><disks>" +
		"<disk name='vda' snapshot='external'><driver type='qcow2'/><source file='/img/t.vda.0a0b0c0d.qcow2'/></disk>" +
		"<disk name='hdc' snapshot='no'/></disks></domainsnapshot>"
	if got != want {
		t.Errorf("snapshotXML =\n%s\nwant\n%s", got, want)
	}
}

func TestNamesBecomeSafeFileNames(t *testing.T) {
	for _, ok := range []string{"mitosis-op-1", "mitosis-hvt-0a1b2c-17", "A_b-9"} {
		if err := checkName(ok); err != nil {
			t.Errorf("checkName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "../etc", "a/b", ".hidden", "a.b", "a b", strings.Repeat("x", 129)} {
		if checkName(bad) == nil {
			t.Errorf("checkName(%q) accepted a name that is not a plain file name", bad)
		}
	}
	if u := newUUID(); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(u) {
		t.Errorf("newUUID() = %s", u)
	}
}
