package libvirt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/libvirt/libvirttest"
)

const canary = "s3cret-canary-7f3a"

func TestConnectURI(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	ok := map[string]string{
		"":                                    "qemu+unix:///system",
		"qemu:///system":                      "qemu+unix:///system",
		"qemu+unix:///system?socket=/run/x.s": "qemu+unix:///system?socket=%2Frun%2Fx.s",
		"qemu:///session":                     "qemu+unix:///session?socket=%2Frun%2Fuser%2F1000%2Flibvirt%2Flibvirt-sock",
		"qemu+tls://kvm1.example.com/system":  "qemu+tls://kvm1.example.com/system",
		"qemu://kvm1.example.com:16600/system?pkipath=/etc/mitosis/pki": "qemu+tls://kvm1.example.com:16600/system?pkipath=%2Fetc%2Fmitosis%2Fpki",
		"qemu+tls://10.0.0.5/system?no_verify=1":                        "qemu+tls://10.0.0.5/system?no_verify=1",
		"test+unix:///default?socket=/tmp/s":                            "test+unix:///default?socket=%2Ftmp%2Fs",
	}
	for in, want := range ok {
		u, err := Config{URI: in}.connectURI()
		if err != nil {
			t.Errorf("connectURI(%q): %v", in, err)
			continue
		}
		if u.String() != want {
			t.Errorf("connectURI(%q) = %s, want %s", in, u, want)
		}
	}

	bad := map[string]string{
		"qemu+tls://admin:" + canary + "@kvm1/system":      "username or password",
		"qemu+tls://admin:" + canary + "@kvm1:port/system": "uri",
		"qemu+tcp://kvm1/system":                           "neither encrypted nor authenticated",
		"qemu+ssh://root@kvm1/system":                      "username or password",
		"qemu+ssh://kvm1/system":                           `transport "ssh"`,
		"qemu+libssh2://kvm1/system":                       `transport "libssh2"`,
		"qemu+tls:///system":                               "needs a host",
		"qemu+unix://kvm1/system":                          "takes no host",
		"qemu+unix:///system?socket=run/x":                 "absolute",
		"qemu+tls://kvm1/system?pkipath=pki":               "absolute",
		"qemu+tls://kvm1/system?no_verify=yes":             "no_verify",
		"/system":                                          "no driver",
	}
	for in, want := range bad {
		_, err := Config{URI: in}.connectURI()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("connectURI(%q): err = %v, want one saying %q", in, err, want)
			continue
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("connectURI(%q): the error quotes the password: %v", in, err)
		}
	}

	t.Setenv("XDG_RUNTIME_DIR", "")
	if _, err := (Config{URI: "qemu:///session"}).connectURI(); err == nil || !strings.Contains(err.Error(), "XDG_RUNTIME_DIR") {
		t.Errorf("session URI without XDG_RUNTIME_DIR: %v", err)
	}
}

func TestImageDirChecks(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"":       "image_dir is required",
		"images": "image_dir must be an absolute path",
	} {
		err := Config{ImageDir: in}.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate of image_dir %q: %v, want one saying %q", in, err, want)
		}
	}
	for in, want := range map[string]string{
		filepath.Join(dir, "absent"): "no such file",
		file:                         "not a directory",
	} {
		err := Config{ImageDir: in}.checkImageDir()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkImageDir(%q): %v, want one saying %q", in, err, want)
		}
	}
	if err := (Config{ImageDir: dir}).checkImageDir(); err != nil {
		t.Error(err)
	}
	// New checks both before dialling anything.
	if _, err := New(t.Context(), Config{URI: "qemu+tcp://h/system", ImageDir: dir}); err == nil {
		t.Error("New accepted a tcp URI")
	}
	if _, err := New(t.Context(), Config{URI: "test:///default", ImageDir: "rel"}); err == nil {
		t.Error("New accepted a relative image_dir")
	}
}

func TestValidateNamesTheKeyOfEachBadValue(t *testing.T) {
	good := Config{URI: "qemu:///system", ImageDir: "/var/lib/mitosis/images"}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(%+v): %v", good, err)
	}
	// Validate touches neither the file system nor a daemon: image_dir
	// need not exist (New checks that).
	if err := (Config{ImageDir: "/nonexistent/mitosis", CloneMode: CloneModeCold, AddressSource: AddressNone, AddressWait: new(time.Minute)}).Validate(); err != nil {
		t.Errorf("Validate of a good section with a missing image_dir: %v", err)
	}
	for _, c := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.URI = "qemu+tcp://h/system" }, "libvirt: uri: the tcp transport"},
		{func(c *Config) { c.ImageDir = "" }, "libvirt: image_dir is required"},
		{func(c *Config) { c.ImageDir = "images" }, "libvirt: image_dir must be an absolute path"},
		{func(c *Config) { c.CloneMode = "warm" }, `libvirt: clone_mode "warm": want "live" or "cold"`},
		{func(c *Config) { c.AddressSource = "dns" }, `libvirt: address_source "dns": want lease, agent, arp or none`},
		{func(c *Config) { c.AddressWait = new(-time.Second) }, "libvirt: address_wait -1s: must not be negative"},
		{func(c *Config) { c.CloneNetwork = "bridged" }, `libvirt: clone_network "bridged": want "isolate" or "inherit"`},
		{func(c *Config) { c.IdentityWait = new(time.Duration(0)) }, "libvirt: identity_wait 0s: must be positive"},
		{func(c *Config) { c.ShutdownTimeout = new(-time.Second) }, "libvirt: shutdown_timeout -1s: must not be negative"},
	} {
		cfg := good
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error saying %q", cfg, err, c.want)
		}
	}
}

func TestNewRefusesANegativeAddressWait(t *testing.T) {
	// Refused before dialling: the daemon named does not exist.
	_, err := New(t.Context(), Config{URI: "test+unix:///default?socket=/nonexistent/sock", ImageDir: t.TempDir(), AddressWait: new(-time.Second)})
	if err == nil || !strings.Contains(err.Error(), "address_wait") {
		t.Errorf("New with address_wait -1s: err = %v, want one naming address_wait", err)
	}
}

// pki is a CA with a server and a client certificate, in the files and
// names libvirt uses (cacert.pem, servercert.pem, serverkey.pem,
// clientcert.pem, clientkey.pem).
type pki struct{ dir string }

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mitosis test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	p := pki{dir}
	p.write(t, "cacert.pem", "CERTIFICATE", caDER)
	for i, who := range []string{"server", "client"} {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: "127.0.0.1"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		p.write(t, who+"cert.pem", "CERTIFICATE", der)
		p.write(t, who+"key.pem", "EC PRIVATE KEY", kder)
	}
	return p
}

func (p pki) write(t *testing.T, name, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestTLS connects over TLS to a real libvirtd listening on 127.0.0.1
// with its own CA, by the standard files in a pkipath directory.
func TestTLS(t *testing.T) {
	server := newPKI(t, filepath.Join(t.TempDir(), "server"))
	// The daemon's user reads its key from the daemon's directory; the
	// directory is made by libvirttest.Start, so the files go in after it is.
	port := freePort(t)
	srvDir, err := os.MkdirTemp("", "mitosis-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(srvDir) })
	if err := os.Chmod(srvDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cacert.pem", "servercert.pem", "serverkey.pem"} {
		b, _ := os.ReadFile(server.path(f))
		if err := os.WriteFile(filepath.Join(srvDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := libvirttest.Start(t, libvirttest.Options{Conf: []string{
		"listen_tls = 1", "listen_tcp = 0", `listen_addr = "127.0.0.1"`,
		fmt.Sprintf("tls_port = %q", fmt.Sprint(port)),
		fmt.Sprintf("ca_file = %q", filepath.Join(srvDir, "cacert.pem")),
		fmt.Sprintf("cert_file = %q", filepath.Join(srvDir, "servercert.pem")),
		fmt.Sprintf("key_file = %q", filepath.Join(srvDir, "serverkey.pem")),
		`auth_tls = "none"`,
	}})
	raw := d.Connect(t, "test:///default") // keeps the test driver's state
	_ = raw
	waitListening(t, port)
	images := t.TempDir()
	uri := func(pkiDir, extra string) string {
		return fmt.Sprintf("test+tls://127.0.0.1:%d/default?pkipath=%s%s", port, pkiDir, extra)
	}

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(t.Context(), Config{URI: uri(server.dir, ""), ImageDir: images, Logger: log})
	if err != nil {
		t.Fatalf("New over TLS: %v", err)
	}
	vm, err := c.Lookup(t.Context(), testTemplate)
	if err != nil || !vm.Running {
		t.Fatalf("Lookup over TLS: %+v, %v", vm, err)
	}
	if _, err := c.Lookup(t.Context(), "mitosis-nope"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup of a missing domain over TLS: %v", err)
	}
	_ = c.Close()

	// A client of another CA: the server refuses it, and with the right
	// client but another CA to check the server by, the client refuses.
	other := newPKI(t, filepath.Join(t.TempDir(), "other"))
	if _, err := New(t.Context(), Config{URI: uri(other.dir, ""), ImageDir: images}); err == nil {
		t.Error("a client certificate of another CA was accepted")
	}
	mixed := filepath.Join(t.TempDir(), "mixed")
	_ = os.Mkdir(mixed, 0o755)
	for f, from := range map[string]pki{"cacert.pem": other, "clientcert.pem": server, "clientkey.pem": server} {
		b, _ := os.ReadFile(from.path(f))
		_ = os.WriteFile(filepath.Join(mixed, f), b, 0o600)
	}
	if _, err := New(t.Context(), Config{URI: uri(mixed, ""), ImageDir: images}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a server certificate of an unknown CA: err = %v, want a certificate error", err)
	}
	// ... unless told not to verify it, which is logged.
	logs.Reset()
	c, err = New(t.Context(), Config{URI: uri(mixed, "&no_verify=1"), ImageDir: images, Logger: log})
	if err != nil {
		t.Fatalf("no_verify=1: %v", err)
	}
	_ = c.Close()
	if !strings.Contains(logs.String(), "not verified") {
		t.Errorf("no_verify=1 was not logged:\n%s", logs.String())
	}
	// Missing files are named.
	empty := t.TempDir()
	if _, err := New(t.Context(), Config{URI: uri(empty, ""), ImageDir: images}); err == nil || !strings.Contains(err.Error(), "clientcert.pem") {
		t.Errorf("pkipath without files: err = %v, want it to name clientcert.pem", err)
	}
}

func waitListening(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd does not listen on 127.0.0.1:%d: %v", port, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
