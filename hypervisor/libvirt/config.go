package libvirt

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	lv "github.com/digitalocean/go-libvirt"
)

// DefaultURI is the daemon Config.URI names when it is empty.
const DefaultURI = "qemu:///system"

// Config says which libvirt daemon to use and where clones' files go. It
// holds no secret (TLS keys stay in their files), so it can be logged.
type Config struct {
	// URI is a libvirt connection URI, as virsh -c takes it; empty means
	// qemu:///system.
	//
	//	qemu:///system                       the local system daemon (/run/libvirt/libvirt-sock)
	//	qemu:///session                      the calling user's session daemon ($XDG_RUNTIME_DIR/libvirt/libvirt-sock)
	//	qemu+unix:///system?socket=PATH      a daemon on another socket
	//	qemu+tls://HOST[:PORT]/system        a remote daemon over TLS (port 16514)
	//
	// TLS uses libvirt's standard files: with ?pkipath=DIR, DIR/cacert.pem,
	// DIR/clientcert.pem and DIR/clientkey.pem; otherwise
	// /etc/pki/CA/cacert.pem, /etc/pki/libvirt/clientcert.pem and
	// /etc/pki/libvirt/private/clientkey.pem (for a user other than root,
	// ~/.pki/libvirt/ is tried first). ?no_verify=1 skips checking the
	// server's certificate (labs only; a warning is logged). Plain TCP
	// (unencrypted, unauthenticated) and SSH transports are refused, and
	// so is a URI carrying a username or password.
	URI string `yaml:"uri"`

	// ImageDir is the directory clones' files are made in: their qcow2
	// overlays, memory images and serial logs (see the package doc). It
	// must be an absolute path that both this process and the libvirt
	// daemon see as the same directory: on the daemon's host, or shared
	// (NFS) at the same path. Destroy deletes files here only, so keep
	// base images elsewhere.
	ImageDir string `yaml:"image_dir"`

	// QemuImg is the qemu-img binary; empty means "qemu-img" on PATH.
	QemuImg string `yaml:"qemu_img"`

	// Host is the name clones report in VM.Host; empty means the libvirt
	// host's hostname.
	Host string `yaml:"host"`

	// CloneMode is how Clone makes a clone: "live" (empty means live),
	// the live clone of the package doc that continues the template's
	// memory, or "cold": a copy of the template's definition under the
	// clone's identity (name, uuid, MACs, its own overlays and serial
	// files, mitosis metadata), booted from disk. A cold clone carries no
	// memory (its caches are cold, its services start from scratch), so it
	// is not what mitosis promises: use it for tests or where a live clone
	// is impossible (libvirt's test driver, a driver other than QEMU). In
	// live mode a driver that cannot live-clone is an error, never a
	// silent cold clone. VM.Method says which a clone is.
	CloneMode string `yaml:"clone_mode"`

	// AddressSource is where a running VM's address (VM.Address, an IP
	// to which the agent adds node_api.port) comes from, as `virsh
	// domifaddr --source` reads it: "lease" (the DHCP leases of libvirt's
	// own networks; empty means lease), "agent" (the QEMU guest agent in
	// the guest), "arp" (the host's ARP table, for bridged guests), or
	// "none": VMs report no address.
	AddressSource string `yaml:"address_source"`

	// AddressWait bounds how long Clone waits for the clone to have an
	// address (a guest's DHCP takes a moment); nil (absent) means
	// DefaultAddressWait, 0 waits not at all, and a negative one is
	// refused. A clone without one is returned all the same, with a
	// warning: Lookup reports the address once there is one, which is
	// where the expand saga keeps looking until its finalize deadline.
	AddressWait *time.Duration `yaml:"address_wait"`

	// CloneNetwork is how a live clone meets the network of its
	// template's NICs (every NIC but a user-mode one, which is private to
	// its VM): "isolate" (empty means isolate) restores the clone with
	// those links down and brings them up only once its QEMU guest agent
	// reports each NIC under the clone's own MAC, holding none of its
	// template's addresses, so that the clone never answers as its
	// template (docs/hypervisors.md, "A clone's own network identity");
	// it needs the guest agent in the template's guest. "inherit"
	// restores the links as they were, up: the clone continues its
	// template's network identity until its guest changes it, so use it
	// only where the host keeps a guest from sending as another
	// (libvirt's no-mac-spoofing filter on every NIC, say).
	CloneNetwork string `yaml:"clone_network"`

	// IdentityWait bounds how long Clone waits for an isolated clone's
	// guest to take its own MACs; nil (absent) means DefaultIdentityWait.
	// A clone that does not is destroyed and Clone fails.
	IdentityWait *time.Duration `yaml:"identity_wait"`

	// ShutdownTimeout is how long Destroy lets a running guest shut down
	// by itself, when its QEMU guest agent takes the request (its OS then
	// gives its DHCP lease back, flushes its disks, says goodbye to whom
	// it must), before it pulls the plug; nil (absent) means
	// DefaultShutdownTimeout, 0 pulls it at once. A guest without an agent
	// is destroyed at once.
	ShutdownTimeout *time.Duration `yaml:"shutdown_timeout"`

	// Logger receives the client's log lines; nil means slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Validate performs every check of the section that needs neither a
// connection nor the file system: uri (its form and transport; not that
// the daemon answers), image_dir (given, absolute; not that it exists,
// which New checks), clone_mode, address_source, address_wait (not
// negative), clone_network, identity_wait (positive) and
// shutdown_timeout (not negative). Its errors name the key as the agent's file names it, e.g.
// `libvirt: clone_mode "warm": want "live" or "cold"`. New calls it, and
// a configuration parser can call it so that a dry run checks the section
// too.
func (c Config) Validate() error {
	if _, err := c.connectURI(); err != nil {
		return err
	}
	if c.ImageDir == "" {
		return errors.New("libvirt: image_dir is required")
	}
	if !filepath.IsAbs(c.ImageDir) {
		return errors.New("libvirt: image_dir must be an absolute path (the daemon resolves it, not this process)")
	}
	if _, err := c.cloneMode(); err != nil {
		return err
	}
	if _, _, err := c.addressSource(); err != nil {
		return err
	}
	if w := c.addressWait(); w < 0 {
		return fmt.Errorf("libvirt: address_wait %v: must not be negative (0 waits not at all)", w)
	}
	if _, err := c.cloneNetwork(); err != nil {
		return err
	}
	if w := c.identityWait(); w <= 0 {
		return fmt.Errorf("libvirt: identity_wait %v: must be positive", w)
	}
	if w := c.shutdownTimeout(); w < 0 {
		return fmt.Errorf("libvirt: shutdown_timeout %v: must not be negative (0 destroys at once)", w)
	}
	return nil
}

// DefaultShutdownTimeout is how long Destroy lets a guest shut down when
// Config.ShutdownTimeout is absent.
const DefaultShutdownTimeout = 10 * time.Second

func (c Config) shutdownTimeout() time.Duration {
	return orDefault(c.ShutdownTimeout, DefaultShutdownTimeout)
}

// The values of Config.CloneNetwork.
const (
	CloneNetworkIsolate = "isolate"
	CloneNetworkInherit = "inherit"
)

// cloneNetwork checks Config.CloneNetwork and returns it, empty as
// isolate.
func (c Config) cloneNetwork() (string, error) {
	return oneOf("clone_network", c.CloneNetwork, CloneNetworkIsolate, CloneNetworkInherit)
}

// DefaultIdentityWait is how long Clone waits for an isolated clone's
// guest to take its own MACs when Config.IdentityWait is absent.
const DefaultIdentityWait = 60 * time.Second

func (c Config) identityWait() time.Duration { return orDefault(c.IdentityWait, DefaultIdentityWait) }

// DefaultAddressWait is how long Clone waits for a new clone's address
// when Config.AddressWait is absent.
const DefaultAddressWait = 30 * time.Second

func (c Config) addressWait() time.Duration { return orDefault(c.AddressWait, DefaultAddressWait) }

// The values of Config.CloneMode.
const (
	CloneModeLive = "live"
	CloneModeCold = "cold"
)

// cloneMode checks Config.CloneMode and returns it, empty as live.
func (c Config) cloneMode() (string, error) {
	return oneOf("clone_mode", c.CloneMode, CloneModeLive, CloneModeCold)
}

// orDefault is an optional duration's value: d when it is absent.
func orDefault(p *time.Duration, d time.Duration) time.Duration {
	if p == nil {
		return d
	}
	return *p
}

// oneOf checks a key with two values, empty meaning the first, and
// returns it; its error names the key and both values.
func oneOf(key, v, first, second string) (string, error) {
	switch v {
	case "", first:
		return first, nil
	case second:
		return second, nil
	}
	return "", fmt.Errorf("libvirt: %s %q: want %q or %q", key, v, first, second)
}

// The values of Config.AddressSource.
const (
	AddressLease = "lease"
	AddressAgent = "agent"
	AddressARP   = "arp"
	AddressNone  = "none"
)

// addressSource checks Config.AddressSource and returns libvirt's source,
// ok=false for none.
func (c Config) addressSource() (source lv.DomainInterfaceAddressesSource, ok bool, err error) {
	switch c.AddressSource {
	case "", AddressLease:
		return lv.DomainInterfaceAddressesSrcLease, true, nil
	case AddressAgent:
		return lv.DomainInterfaceAddressesSrcAgent, true, nil
	case AddressARP:
		return lv.DomainInterfaceAddressesSrcArp, true, nil
	case AddressNone:
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("libvirt: address_source %q: want lease, agent, arp or none", c.AddressSource)
}

func (c Config) qemuImg() string {
	if c.QemuImg == "" {
		return "qemu-img"
	}
	return c.QemuImg
}

// connectURI checks Config.URI and returns it as go-libvirt dials it.
// Its errors name what is wrong without quoting the URI, which might
// carry a password despite the rule.
func (c Config) connectURI() (*url.URL, error) {
	s := c.URI
	if s == "" {
		s = DefaultURI
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error quotes the URI itself
		}
		return nil, fmt.Errorf("libvirt: uri: %w", err)
	}
	if u.User != nil {
		return nil, errors.New("libvirt: uri must not carry a username or password")
	}
	driver, transport, _ := strings.Cut(u.Scheme, "+")
	if driver == "" {
		return nil, errors.New("libvirt: uri has no driver (want qemu:///system or the like)")
	}
	if transport == "" {
		transport = "unix"
		if u.Host != "" {
			transport = "tls" // libvirt's default for a remote host
		}
	}
	q := u.Query()
	switch transport {
	case "unix":
		if u.Host != "" {
			return nil, errors.New("libvirt: uri: the unix transport takes no host")
		}
		if q.Get("socket") == "" && u.Path == "/session" {
			// go-libvirt would dial the system socket.
			rt := os.Getenv("XDG_RUNTIME_DIR")
			if rt == "" {
				return nil, errors.New("libvirt: uri: a session daemon's socket is under $XDG_RUNTIME_DIR, which is not set; give ?socket=PATH")
			}
			q.Set("socket", filepath.Join(rt, "libvirt", "libvirt-sock"))
		}
		if s := q.Get("socket"); s != "" && !filepath.IsAbs(s) {
			return nil, errors.New("libvirt: uri: socket must be an absolute path")
		}
	case "tls":
		if u.Hostname() == "" {
			return nil, errors.New("libvirt: uri: the tls transport needs a host")
		}
		if p := q.Get("pkipath"); p != "" && !filepath.IsAbs(p) {
			return nil, errors.New("libvirt: uri: pkipath must be an absolute path")
		}
		if nv := q.Get("no_verify"); nv != "" && nv != "0" && nv != "1" {
			return nil, errors.New("libvirt: uri: no_verify must be 0 or 1")
		}
	case "tcp":
		return nil, errors.New("libvirt: uri: the tcp transport is neither encrypted nor authenticated; use tls")
	default:
		return nil, fmt.Errorf("libvirt: uri: transport %q is not supported (use unix or tls)", transport)
	}
	u.Scheme = driver + "+" + transport
	u.RawQuery = q.Encode()
	return u, nil
}

// noVerify reports whether the URI turns off checking the server's
// certificate.
func noVerify(u *url.URL) bool { return u.Query().Get("no_verify") == "1" }

// checkImageDir checks that image_dir (which Validate found absolute) is
// a directory.
func (c Config) checkImageDir() error {
	fi, err := os.Stat(c.ImageDir)
	if err != nil {
		return fmt.Errorf("libvirt: image_dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("libvirt: image_dir %s is not a directory", c.ImageDir)
	}
	return nil
}
