package libvirt

import (
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Namespace is the XML namespace of the metadata element mitosis puts in
// the <metadata> of every domain it makes:
//
//	<mitosis:vm xmlns:mitosis="https://mitosis-autoscaler.dev/xmlns/vm/1">
//	  <mitosis:operation>op-17</mitosis:operation>
//	  <mitosis:fence>3</mitosis:fence>
//	  <mitosis:template>web-0</mitosis:template>
//	  <mitosis:method>live-clone</mitosis:method>
//	</mitosis:vm>
//
// Read it with `virsh metadata DOMAIN https://mitosis-autoscaler.dev/xmlns/vm/1`.
const Namespace = "https://mitosis-autoscaler.dev/xmlns/vm/1"

const nsPrefix = "mitosis"

// VM.Method of the clones this back-end makes: a live clone is a domain
// restored from a live memory snapshot of its template; a cold clone
// (Config.CloneMode "cold") is a copy of its template's definition booted
// from disk, without its memory.
const (
	MethodLiveClone = "live-clone"
	MethodColdClone = "cold-clone"
)

// meta is what mitosis keeps in a domain's metadata. libvirt hands the
// element back (DomainGetMetadata, asked by Namespace) without its
// namespace, so the fields are matched by local name.
type meta struct {
	XMLName   xml.Name `xml:"vm"`
	Operation string   `xml:"operation"`
	Fence     uint64   `xml:"fence"`
	Template  string   `xml:"template"`
	Method    string   `xml:"method"`
}

// element renders m as the metadata element, with the prefix and
// namespace declaration libvirt wants.
func (m meta) element() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<%s:vm xmlns:%s="%s">`, nsPrefix, nsPrefix, Namespace)
	field := func(name, v string) {
		fmt.Fprintf(&b, "<%s:%s>%s</%s:%s>", nsPrefix, name, escape(v), nsPrefix, name)
	}
	field("operation", m.Operation)
	field("fence", strconv.FormatUint(m.Fence, 10))
	field("template", m.Template)
	field("method", m.Method)
	fmt.Fprintf(&b, "</%s:vm>", nsPrefix)
	return b.String()
}

// parseMeta reads the metadata element as DomainGetMetadata returns it.
func parseMeta(s string) (meta, error) {
	var m meta
	if err := xml.Unmarshal([]byte(s), &m); err != nil {
		return meta{}, fmt.Errorf("mitosis metadata: %w", err)
	}
	return m, nil
}

// domainXML is the part of a domain's XML the clone steps read.
type domainXML struct {
	Name     string    `xml:"name"`
	UUID     string    `xml:"uuid"`
	Metadata *struct{} `xml:"metadata"`
	Devices  struct {
		Disks      []diskXML `xml:"disk"`
		Interfaces []nicXML  `xml:"interface"`
	} `xml:"devices"`
}

// nicXML is the part of a domain's <interface> the clone steps read.
type nicXML struct {
	Type string `xml:"type,attr"`
	MAC  struct {
		Address string `xml:"address,attr"`
	} `xml:"mac"`
	Link *struct {
		State string `xml:"state,attr"`
	} `xml:"link"`
}

// shared reports whether the NIC is on a network other VMs are on: every
// kind but a user-mode NIC, whose network is private to its VM.
func (n nicXML) shared() bool { return n.Type != "user" }

// down reports whether the NIC's link is down.
func (n nicXML) down() bool { return n.Link != nil && n.Link.State == "down" }

type diskXML struct {
	Type   string `xml:"type,attr"`
	Device string `xml:"device,attr"`
	Driver struct {
		Type string `xml:"type,attr"`
	} `xml:"driver"`
	Source struct {
		File string `xml:"file,attr"`
	} `xml:"source"`
	Target struct {
		Dev string `xml:"dev,attr"`
	} `xml:"target"`
	ReadOnly  *struct{} `xml:"readonly"`
	Shareable *struct{} `xml:"shareable"`
	Transient *struct{} `xml:"transient"`
}

func parseDomain(s string) (domainXML, error) {
	var d domainXML
	if err := xml.Unmarshal([]byte(s), &d); err != nil {
		return domainXML{}, fmt.Errorf("domain XML: %w", err)
	}
	return d, nil
}

// cloned reports whether a clone gets an overlay of its own on this disk.
// Read-only and shareable disks (and CD-ROMs) are shared as they are. A
// writable disk that is not a file cannot be cloned: sharing it would let
// two guests write one disk, so it is an error rather than a guess.
func (d diskXML) cloned() (bool, error) {
	switch {
	case d.Device == "cdrom" || d.Device == "floppy" || d.ReadOnly != nil || d.Shareable != nil:
		return false, nil
	case d.Transient != nil:
		return false, fmt.Errorf("disk %s is transient; a transient disk cannot be snapshotted", d.Target.Dev)
	case d.Type != "file":
		return false, fmt.Errorf("disk %s is of type %q; only file disks can be cloned", d.Target.Dev, d.Type)
	case d.Source.File == "":
		return false, fmt.Errorf("disk %s has no source file", d.Target.Dev)
	}
	return true, nil
}

// format is the disk's image format (the -F of its overlay).
func (d diskXML) format() string {
	if d.Driver.Type == "" {
		return "raw"
	}
	return d.Driver.Type
}

// snapshotXML is the live external snapshot that makes a clone point: the
// memory goes to memFile, and every cloned disk of the template goes on
// a new qcow2 overlay (tops[target]) so that its current image is frozen
// as the clone's base. No libvirt snapshot object is kept (NO_METADATA):
// the snapshot exists only as these files. An empty memFile makes a
// disk-only snapshot (a cold clone's).
func snapshotXML(name, memFile string, disks []diskXML, tops map[string]string) string {
	var b strings.Builder
	mem := "<memory snapshot='no'/>"
	if memFile != "" {
		mem = fmt.Sprintf("<memory snapshot='external' file='%s'/>", escape(memFile))
	}
	fmt.Fprintf(&b, "<domainsnapshot><name>%s</name>%s<disks>", escape(name), mem)
	for _, d := range disks {
		if top, ok := tops[d.Target.Dev]; ok {
			fmt.Fprintf(&b, "<disk name='%s' snapshot='external'><driver type='qcow2'/><source file='%s'/></disk>", escape(d.Target.Dev), escape(top))
		} else {
			fmt.Fprintf(&b, "<disk name='%s' snapshot='no'/>", escape(d.Target.Dev))
		}
	}
	b.WriteString("</disks></domainsnapshot>")
	return b.String()
}

// identity is what makes a clone another domain than its template.
type identity struct {
	name, uuid string
	// disks maps a cloned disk's target (vda) to the clone's overlay.
	disks map[string]string
	// chardev returns the clone's path for a file-backed serial port,
	// console or channel of the template (a console usually repeats its
	// serial port's path; the same old path must give the same new one).
	chardev func(old string) string
	meta    meta
}

// cloneXML rewrites a domain XML (the template's, as its save image holds
// it) for a clone: new name and uuid, a new MAC on every interface, each
// cloned disk on its overlay (without the template's backing chain, which
// libvirt probes again), file-backed character devices on files of the
// clone, dynamic security labels dropped (libvirt makes new ones), and
// mitosis's metadata element replaced. Everything else stays byte for byte.
func cloneXML(doc string, id identity) (string, error) {
	d, err := parseDomain(doc)
	if err != nil {
		return "", err
	}
	r := &rewriter{id: id, disks: d.Devices.Disks, sawMeta: d.Metadata != nil}
	out, err := rawWalk(doc, r.token)
	if err != nil {
		return "", err
	}
	if r.err != nil {
		return "", r.err
	}
	out += r.space
	if !r.sawName || !r.sawUUID {
		return "", errors.New("domain XML has no <name> or <uuid>")
	}
	return out, nil
}

type rewriter struct {
	id    identity
	disks []diskXML
	err   error

	path     []string // element names from the root, prefixes kept
	skip     int      // > 0: inside a subtree being dropped, its depth
	disk     int      // index of the current /domain/devices/disk
	chardev  bool     // inside a file-backed character device
	dynLabel bool     // inside a dynamic <seclabel>
	sawMeta  bool     // the domain has a <metadata>, or it was added
	sawName  bool
	sawUUID  bool
	// space is whitespace held back until the next token is known to
	// stay, so that a dropped element does not leave an empty line.
	space string
}

var chardevs = map[string]bool{"serial": true, "console": true, "parallel": true, "channel": true}

func (r *rewriter) at(p ...string) bool {
	if len(r.path) != len(p) {
		return false
	}
	for i := range p {
		if r.path[i] != p[i] {
			return false
		}
	}
	return true
}

func (r *rewriter) token(tok xml.Token, raw string) string {
	if cd, ok := tok.(xml.CharData); ok && r.skip == 0 && strings.TrimSpace(string(cd)) == "" {
		r.space += raw
		return ""
	}
	out := r.edit(tok, raw)
	if r.skip > 0 && out == "" {
		r.space = "" // the dropped element's indentation goes with it
		return ""
	}
	out, r.space = r.space+out, ""
	return out
}

func (r *rewriter) edit(tok xml.Token, raw string) string {
	switch t := tok.(type) {
	case xml.StartElement:
		r.path = append(r.path, qname(t.Name))
		if r.skip > 0 {
			return ""
		}
		return r.start(t, raw)
	case xml.EndElement:
		defer func() { r.path = r.path[:len(r.path)-1] }()
		if r.skip > 0 {
			if len(r.path) == r.skip {
				r.skip = 0
			}
			return ""
		}
		return r.end(raw)
	case xml.CharData:
		if r.skip > 0 {
			return ""
		}
		switch {
		case r.at("domain", "name"):
			r.sawName = true
			return escape(r.id.name)
		case r.at("domain", "uuid"):
			r.sawUUID = true
			return escape(r.id.uuid)
		}
	}
	if r.skip > 0 {
		return ""
	}
	return raw
}

func (r *rewriter) start(t xml.StartElement, raw string) string {
	n := len(r.path)
	switch {
	case r.at("domain", "devices", "disk"):
		r.disk++
	case n == 3 && r.path[1] == "devices" && chardevs[r.path[2]]:
		r.chardev = attr(t, "type") == "file"
	case r.at("domain", "seclabel"):
		r.dynLabel = attr(t, "type") == "dynamic"
	case r.at("domain", "metadata"):
		if selfClosing(raw) {
			return "<metadata>" + r.id.meta.element() + "</metadata>"
		}
	case r.at("domain", "name") && selfClosing(raw), r.at("domain", "uuid") && selfClosing(raw):
		r.err = fmt.Errorf("domain XML has an empty <%s>", r.path[1])
	}

	switch {
	case n == 3 && r.path[1] == "metadata" && declares(t, Namespace):
		r.skip = n // the template's mitosis element: the clone gets its own
		return ""
	case n == 4 && r.at("domain", "devices", "disk", "source") && r.clonedDisk():
		return setAttr(t, raw, "file", r.id.disks[r.disks[r.disk-1].Target.Dev])
	case n == 4 && r.at("domain", "devices", "disk", "backingStore") && r.clonedDisk():
		r.skip = n
		return ""
	case n == 4 && r.at("domain", "devices", "interface", "mac"):
		return setAttr(t, raw, "address", newMAC())
	case n == 4 && r.path[1] == "devices" && chardevs[r.path[2]] && r.path[3] == "source" && r.chardev:
		if p := attr(t, "path"); p != "" {
			return setAttr(t, raw, "path", r.id.chardev(p))
		}
	case n == 4 && r.path[1] == "devices" && chardevs[r.path[2]] && r.path[3] == "log":
		if p := attr(t, "file"); p != "" {
			return setAttr(t, raw, "file", r.id.chardev(p))
		}
	case n == 3 && r.dynLabel && (r.path[2] == "label" || r.path[2] == "imagelabel"):
		r.skip = n
		return ""
	}
	return raw
}

func (r *rewriter) end(raw string) string {
	switch {
	case r.at("domain", "metadata") && raw != "":
		return r.id.meta.element() + raw
	case r.at("domain", "uuid") && !r.sawMeta:
		r.sawMeta = true
		return raw + "<metadata>" + r.id.meta.element() + "</metadata>"
	case r.at("domain", "devices", "disk"):
		// a disk's children come before the next disk's
	case len(r.path) == 3 && r.path[1] == "devices" && chardevs[r.path[2]]:
		r.chardev = false
	case r.at("domain", "seclabel"):
		r.dynLabel = false
	}
	return raw
}

// clonedDisk reports whether the current disk gets the clone's overlay.
func (r *rewriter) clonedDisk() bool {
	if r.disk == 0 || r.disk > len(r.disks) {
		return false
	}
	_, ok := r.id.disks[r.disks[r.disk-1].Target.Dev]
	return ok
}

// rawWalk calls f for every token of doc with the text it was read from,
// and returns the concatenation of what f returns: an edit of doc that
// leaves untouched what f returns as it was.
func rawWalk(doc string, f func(tok xml.Token, raw string) string) (string, error) {
	d := xml.NewDecoder(strings.NewReader(doc))
	var out strings.Builder
	out.Grow(len(doc) + 512)
	prev := 0
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("domain XML: %w", err)
		}
		end := int(d.InputOffset())
		out.WriteString(f(tok, doc[prev:end]))
		prev = end
	}
	out.WriteString(doc[prev:])
	return out.String(), nil
}

// compactXML drops the whitespace between elements (libvirt indents its
// XML), for a clone's XML that would not fit its save image otherwise.
func compactXML(doc string) (string, error) {
	return rawWalk(doc, func(tok xml.Token, raw string) string {
		if cd, ok := tok.(xml.CharData); ok && strings.TrimSpace(string(cd)) == "" {
			return ""
		}
		return raw
	})
}

func qname(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

func attr(t xml.StartElement, name string) string {
	for _, a := range t.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// declares reports whether t binds a namespace prefix (or the default
// namespace) to ns.
func declares(t xml.StartElement, ns string) bool {
	for _, a := range t.Attr {
		if (a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns")) && a.Value == ns {
			return true
		}
	}
	return false
}

func selfClosing(raw string) bool { return strings.HasSuffix(strings.TrimSpace(raw), "/>") }

// setAttr renders start tag t with attribute name set to value.
func setAttr(t xml.StartElement, raw, name, value string) string {
	var b strings.Builder
	b.WriteString("<" + qname(t.Name))
	found := false
	for _, a := range t.Attr {
		v := a.Value
		if a.Name.Space == "" && a.Name.Local == name {
			v, found = value, true
		}
		fmt.Fprintf(&b, " %s='%s'", qname(a.Name), escape(v))
	}
	if !found {
		fmt.Fprintf(&b, " %s='%s'", name, escape(value))
	}
	if selfClosing(raw) {
		b.WriteString("/>")
	} else {
		b.WriteString(">")
	}
	return b.String()
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// newUUID returns a random (version 4) uuid.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newMAC returns a random MAC address in QEMU's 52:54:00 range, the one
// libvirt picks from.
func newMAC() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}
