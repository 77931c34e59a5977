package vsphere

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// stranger returns a running VM of vcsim's inventory that mitosis did not
// make and that is not the template.
func stranger(t *testing.T, c *Client, s *vcsim) *object.VirtualMachine {
	t.Helper()
	for _, name := range []string{"DC0_H0_VM1", "DC0_H0_VM0"} {
		if name == s.Template {
			continue
		}
		vm, err := c.findVM(t.Context(), name)
		if err != nil {
			t.Fatalf("vcsim VM %s: %v", name, err)
		}
		return vm
	}
	panic("unreachable")
}

func rename(t *testing.T, vm *object.VirtualMachine, name string) {
	t.Helper()
	task, err := vm.Rename(t.Context(), name)
	if err == nil {
		err = task.Wait(t.Context())
	}
	if err != nil {
		t.Fatalf("renaming %s to %s: %v", vm.Reference().Value, name, err)
	}
}

// cloneFolderClient is a client whose clones go to folder mitosis-clones,
// created under the datacenter's vm folder.
func cloneFolderClient(t *testing.T, s *vcsim) *Client {
	t.Helper()
	c0 := newClient(t, s.Config(t, debugLogger(t.Output())))
	if _, err := c0.folder.CreateFolder(t.Context(), "mitosis-clones"); err != nil {
		t.Fatal(err)
	}
	cfg := s.Config(t, debugLogger(t.Output()))
	cfg.Folder = "mitosis-clones"
	c := newClient(t, cfg)
	if !strings.HasSuffix(c.folder.InventoryPath, "/mitosis-clones") {
		t.Fatalf("clone folder is %s", c.folder.InventoryPath)
	}
	return c
}

func namedCount(t *testing.T, c *Client, name string) int {
	t.Helper()
	vms, err := c.vmsNamed(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return len(vms)
}

func TestCloneRefusesAStrangerOfTheSameNameOutsideTheCloneFolder(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	c := cloneFolderClient(t, s)
	other := stranger(t, c, s)
	rename(t, other, "mitosis-op1") // it stays in the datacenter's vm folder

	found, err := c.Lookup(t.Context(), "mitosis-op1")
	if err != nil || found.Operation != "" || found.ID != other.Reference().Value {
		t.Fatalf("Lookup = %+v, %v; want the stranger %s without an operation", found, err, other.Reference().Value)
	}
	_, err = c.Clone(t.Context(), req("op1", s.Template, 1))
	if !errors.Is(err, hypervisor.ErrNameTaken) {
		t.Fatalf("Clone over a stranger of that name: err = %v, want ErrNameTaken", err)
	}
	if n := namedCount(t, c, "mitosis-op1"); n != 1 {
		t.Errorf("%d VMs named mitosis-op1 after the refused clone, want 1 (the stranger)", n)
	}
	if again, err := c.Lookup(t.Context(), "mitosis-op1"); err != nil || again.ID != found.ID || !again.Running {
		t.Errorf("the stranger after the refused clone: %+v, %v", again, err)
	}
	// InstantClone refuses it too.
	if _, err := c.InstantClone(t.Context(), req("op1", s.Template, 1)); !errors.Is(err, hypervisor.ErrNameTaken) {
		t.Errorf("InstantClone over a stranger of that name: err = %v, want ErrNameTaken", err)
	}
}

func TestDestroyAndLookupRefuseToChooseBetweenTwoVMsOfOneName(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	c := cloneFolderClient(t, s)
	clone, err := c.Clone(t.Context(), req("op1", s.Template, 1))
	if err != nil {
		t.Fatal(err)
	}
	// Someone else names a VM elsewhere like the clone.
	other := stranger(t, c, s)
	rename(t, other, clone.Name)

	for range 2 {
		if err := c.Destroy(t.Context(), clone.Name); err == nil || !strings.Contains(err.Error(), "refusing to choose") {
			t.Fatalf("Destroy of an ambiguous name: err = %v, want a refusal", err)
		}
	}
	if n := namedCount(t, c, clone.Name); n != 2 {
		t.Errorf("%d VMs named %s after the refused destroys, want both", n, clone.Name)
	}
	if _, err := c.Lookup(t.Context(), clone.Name); err == nil || errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup of an ambiguous name: err = %v, want an error that is not ErrNotFound", err)
	}
	if _, err := c.Clone(t.Context(), req("op1", s.Template, 1)); !errors.Is(err, hypervisor.ErrNameTaken) {
		t.Errorf("Clone retry with a stranger of the same name: err = %v, want ErrNameTaken", err)
	}

	// Once the stranger has its name back, the clone alone is destroyed.
	rename(t, other, "renamed-back")
	if err := c.Destroy(t.Context(), clone.Name); err != nil {
		t.Fatal(err)
	}
	if vm, err := c.Lookup(t.Context(), "renamed-back"); err != nil || vm.ID != other.Reference().Value {
		t.Errorf("the stranger after the clone's destroy: %+v, %v", vm, err)
	}
}

func TestInstantCloneRefusesALinkedCloneOfItsOperation(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	linked, err := c.Clone(t.Context(), req("op1", s.Template, 1))
	if err != nil || linked.Method != MethodLinkedClone {
		t.Fatalf("Clone = %+v, %v; want a linked clone", linked, err)
	}
	_, err = c.InstantClone(t.Context(), req("op1", s.Template, 1))
	if err == nil || !strings.Contains(err.Error(), "not a live one") {
		t.Fatalf("InstantClone finding the linked clone of its operation: err = %v, want a refusal", err)
	}
	if n := namedCount(t, c, linked.Name); n != 1 {
		t.Errorf("%d VMs named %s, want 1", n, linked.Name)
	}
	// Clone (which may fall back) still returns it.
	if again, err := c.Clone(t.Context(), req("op1", s.Template, 1)); err != nil || again.ID != linked.ID {
		t.Errorf("Clone retry = %+v, %v; want %s", again, err, linked.ID)
	}
}

func TestInstantCloneReturnsAnInstantCloneOfItsOperation(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	s.AddInstantClone()
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	vm, err := c.InstantClone(t.Context(), req("op1", s.Template, 1))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.InstantClone(t.Context(), req("op1", s.Template, 2))
	if err != nil || again.ID != vm.ID || again.Method != MethodInstantClone {
		t.Errorf("InstantClone retry = %+v, %v; want %s", again, err, vm.ID)
	}
}

func setGuestIP(t *testing.T, vm *object.VirtualMachine, ip string) {
	t.Helper()
	// vcsim's way of letting a guest report an address.
	task, err := vm.Reconfigure(t.Context(), types.VirtualMachineConfigSpec{ExtraConfig: []types.BaseOptionValue{
		&types.OptionValue{Key: "SET.guest.ipAddress", Value: ip},
	}})
	if err == nil {
		err = task.Wait(t.Context())
	}
	if err != nil {
		t.Fatalf("reconfigure: %v", err)
	}
}

func TestLookupNeverReportsLoopbackOrLinkLocalAddresses(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	tmpl, err := c.findVM(t.Context(), s.Template)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"fe80::250:56ff:fe9a:1", "127.0.0.1", "::1", "169.254.12.34", "0.0.0.0"} {
		setGuestIP(t, tmpl, ip)
		vm, err := c.Lookup(t.Context(), s.Template)
		if err != nil {
			t.Fatal(err)
		}
		if vm.Address != "" {
			t.Errorf("guest reporting %s: Address = %q, want none", ip, vm.Address)
		}
	}
	setGuestIP(t, tmpl, "10.0.0.7")
	if vm, err := c.Lookup(t.Context(), s.Template); err != nil || vm.Address != "10.0.0.7" {
		t.Errorf("Lookup = %+v, %v; want address 10.0.0.7", vm, err)
	}
}

func TestAddressWaitGoesOnWaitingPastLinkLocalAddresses(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	cfg := s.Config(t, debugLogger(t.Output()))
	cfg.AddressWait = new(300 * time.Millisecond)
	c := newClient(t, cfg)
	tmpl, err := c.findVM(t.Context(), s.Template)
	if err != nil {
		t.Fatal(err)
	}
	setGuestIP(t, tmpl, "169.254.1.1")
	vm := hypervisor.VM{ID: tmpl.Reference().Value}
	if got := c.waitAddress(t.Context(), vm, "", c.log); got.Address != "" {
		t.Fatalf("waitAddress with a link-local guest address = %q, want none", got.Address)
	}
	c.cfg.AddressWait = new(10 * time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(200 * time.Millisecond)
		setGuestIP(t, tmpl, "10.0.0.9")
	}()
	got := c.waitAddress(t.Context(), vm, "", c.log)
	<-done
	if got.Address != "10.0.0.9" {
		t.Errorf("waitAddress = %q, want 10.0.0.9 once the guest reports it", got.Address)
	}
}

// An Instant Clone's guest goes on with its template's network
// configuration until it takes its own: meanwhile it reports its
// template's address, and the clone has no address (Lookup and the
// address wait alike), never its template's.
func TestACloneIsNeverReportedAtItsTemplatesAddress(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	s.AddInstantClone()
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	tmpl, err := c.findVM(t.Context(), s.Template)
	if err != nil {
		t.Fatal(err)
	}
	setGuestIP(t, tmpl, "10.0.0.7")
	clone, err := c.InstantClone(t.Context(), req("op1", s.Template, 1))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := c.findVM(t.Context(), clone.Name)
	if err != nil {
		t.Fatal(err)
	}
	setGuestIP(t, obj, "10.0.0.7")
	if vm, err := c.Lookup(t.Context(), clone.Name); err != nil || vm.Address != "" {
		t.Errorf("Lookup of a clone reporting its template's address = %+v, %v; want no address", vm, err)
	}
	if vm, err := c.Lookup(t.Context(), s.Template); err != nil || vm.Address != "10.0.0.7" {
		t.Errorf("Lookup of the template = %+v, %v; want 10.0.0.7", vm, err)
	}
	c.cfg.AddressWait = new(10 * time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(300 * time.Millisecond)
		setGuestIP(t, obj, "10.0.0.8")
	}()
	got := c.waitAddress(t.Context(), hypervisor.VM{ID: obj.Reference().Value}, s.Template, c.log)
	<-done
	if got.Address != "10.0.0.8" {
		t.Errorf("the address wait gave %q, want the clone's own 10.0.0.8 (never 10.0.0.7)", got.Address)
	}
	if vm, err := c.Lookup(t.Context(), clone.Name); err != nil || vm.Address != "10.0.0.8" {
		t.Errorf("Lookup once the clone has its own address = %+v, %v; want 10.0.0.8", vm, err)
	}
}

func TestPickAddressPrefersReachableIPv4(t *testing.T) {
	nic := func(a ...string) types.GuestNicInfo { return types.GuestNicInfo{IpAddress: a} }
	for _, tc := range []struct {
		primary string
		nets    []types.GuestNicInfo
		want    string
	}{
		{"", nil, ""},
		{"10.1.2.3", nil, "10.1.2.3"},
		{"fe80::1", []types.GuestNicInfo{nic("fe80::1", "169.254.0.9"), nic("2001:db8::5", "192.0.2.5")}, "192.0.2.5"},
		{"127.0.0.1", []types.GuestNicInfo{nic("2001:db8::5", "fe80::1")}, "2001:db8::5"},
		{"::ffff:10.0.0.1", nil, "10.0.0.1"},
		{"not an address", []types.GuestNicInfo{nic("169.254.1.1", "::1")}, ""},
	} {
		if got := pickAddress(tc.primary, tc.nets, nil); got != tc.want {
			t.Errorf("pickAddress(%q, %v) = %q, want %q", tc.primary, tc.nets, got, tc.want)
		}
	}
}

func TestNamesAreNamesNotInventoryPaths(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	other := stranger(t, c, s)
	otherName := "DC0_H0_VM1"
	if s.Template == otherName {
		otherName = "DC0_H0_VM0"
	}
	paths := []string{".", "..", "/", "/F0/DC0/vm/" + otherName, "/DC0/vm/" + otherName, "vm/" + otherName, "./" + otherName, "../" + otherName, otherName + "/"}
	for _, name := range paths {
		if _, err := c.Lookup(t.Context(), name); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("Lookup(%q): err = %v, want ErrNotFound", name, err)
		}
		if err := c.Destroy(t.Context(), name); err != nil {
			t.Errorf("Destroy(%q) = %v, want success (no VM has that name)", name, err)
		}
	}
	for _, pattern := range []string{"DC0_H0_VM*", "DC0_H0_VM?", "DC0_H0_VM[01]"} {
		if _, err := c.Lookup(t.Context(), pattern); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("Lookup(%q): err = %v, want ErrNotFound", pattern, err)
		}
		if err := c.Destroy(t.Context(), pattern); err != nil {
			t.Errorf("Destroy(%q) = %v", pattern, err)
		}
	}
	if vm, err := c.Lookup(t.Context(), otherName); err != nil || vm.ID != other.Reference().Value || !vm.Running {
		t.Fatalf("%s after destroying paths to it: %+v, %v; want it untouched", otherName, vm, err)
	}
	if _, err := c.Lookup(t.Context(), s.Template); err != nil {
		t.Fatalf("the template after destroying paths and patterns: %v", err)
	}

	for _, name := range []string{".", "..", "a/b", "/mitosis-x", "mitosis-x/"} {
		r := hypervisor.CloneRequest{Operation: "op1", Name: name, Template: s.Template, Fence: 1}
		_, err := c.Clone(t.Context(), r)
		if err == nil || !strings.Contains(err.Error(), "must not contain") {
			t.Errorf("Clone named %q: err = %v, want a refusal of the name", name, err)
		}
	}
	// A template given as a path is no template's name.
	r := hypervisor.CloneRequest{Operation: "op2", Name: "mitosis-op2", Template: "/DC0/vm/" + s.Template, Fence: 1}
	if _, err := c.Clone(t.Context(), r); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Clone from a template path: err = %v, want ErrNotFound", err)
	}
	if _, err := c.Lookup(t.Context(), "mitosis-op2"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("a clone was made from a template path: %v", err)
	}
}

// vCenter keeps "%" and "\" in a name escaped (a VM named 50% has the
// name property 50%25); vcsim keeps names as given. Either spelling is
// that name.
func TestNamesAreMatchedInVSphereEscapedForm(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	c := newClient(t, s.Config(t, debugLogger(t.Output())))
	other := stranger(t, c, s)
	rename(t, other, `node-50%25-a%5cb`)
	vm, err := c.Lookup(t.Context(), `node-50%-a\b`)
	if err != nil || vm.ID != other.Reference().Value {
		t.Fatalf("Lookup of the unescaped name = %+v, %v; want %s", vm, err, other.Reference().Value)
	}
	if _, err := c.Lookup(t.Context(), `node-50%-a`); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup of a prefix: err = %v, want ErrNotFound", err)
	}
}

func TestURLWithAQueryIsRefusedAndNeverLogged(t *testing.T) {
	s := startVCSim(t, "mitosis", "secret")
	var logs testenv.Buffer
	cfg := s.Config(t, debugLogger(&logs))
	for _, q := range []string{"?user=admin&password=s3cret", "?s3cret", "#s3cret", "?"} {
		cfg.URL = "https://" + s.srv.URL.Host + "/sdk" + q
		c, err := New(t.Context(), cfg)
		if err == nil {
			_ = c.Close(t.Context())
			t.Errorf("New accepted a url ending in %q", q)
			continue
		}
		if !strings.Contains(err.Error(), "url must not carry a query") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("url ending in %q: err = %v", q, err)
		}
	}
	if strings.Contains(logs.String(), "s3cret") || strings.Contains(logs.String(), "vsphere connected") {
		t.Errorf("the log shows the refused url:\n%s", logs.String())
	}
	// The one accepted is logged without a query.
	cfg.URL = "https://" + s.srv.URL.Host + "/sdk"
	newClient(t, cfg)
	var connected string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, `msg="vsphere connected"`) {
			connected = line
		}
	}
	if !strings.Contains(connected, " url=https://"+s.srv.URL.Host+"/sdk ") {
		t.Errorf("the connected line does not show the plain url: %q", connected)
	}
}

func TestValidateChecksTheSectionWithoutConnecting(t *testing.T) {
	dir := t.TempDir()
	creds := writeCredentials(t, "u", "p")
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_VS_VAL_USER", "u")
	t.Setenv("TEST_VS_VAL_PASS", "p")
	// Port 1 on loopback: nothing listens, and Validate must not ask.
	ok := Config{URL: "https://127.0.0.1:1/sdk", CredentialsFile: creds}
	with := func(f func(*Config)) Config { c := ok; f(&c); return c }
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" for no error
	}{
		{"valid file", ok, ""},
		{"valid env", with(func(c *Config) {
			c.CredentialsFile, c.UsernameEnv, c.PasswordEnv = "", "TEST_VS_VAL_USER", "TEST_VS_VAL_PASS"
		}), ""},
		{"no url", with(func(c *Config) { c.URL = "" }), "url is required"},
		{"ftp url", with(func(c *Config) { c.URL = "ftp://vc/sdk" }), "url scheme"},
		{"url without host", with(func(c *Config) { c.URL = "https:///sdk" }), "url has no host"},
		{"url with userinfo", with(func(c *Config) { c.URL = "https://admin:s3cret@vc/sdk" }), "url must not carry a username or password"},
		{"url with query", with(func(c *Config) { c.URL = "https://vc/sdk?user=admin&password=s3cret" }), "url must not carry a query"},
		{"bad url", with(func(c *Config) { c.URL = "https://vc:s3cret:x/sdk" }), "vsphere: url:"},
		{"missing credentials_file", with(func(c *Config) { c.CredentialsFile = filepath.Join(dir, "absent") }), "credentials_file"},
		{"credentials_file a directory", with(func(c *Config) { c.CredentialsFile = dir }), "credentials_file " + dir + ": not a regular file"},
		{"no credentials", with(func(c *Config) { c.CredentialsFile = "" }), "set credentials_file"},
		{"both sources", with(func(c *Config) { c.UsernameEnv, c.PasswordEnv = "TEST_VS_VAL_USER", "TEST_VS_VAL_PASS" }), "not both"},
		{"half env", with(func(c *Config) { c.CredentialsFile, c.UsernameEnv = "", "TEST_VS_VAL_USER" }), "password_env"},
		{"unset env", with(func(c *Config) {
			c.CredentialsFile, c.UsernameEnv, c.PasswordEnv = "", "TEST_VS_VAL_USER", "TEST_VS_VAL_UNSET"
		}), "password_env: environment variable TEST_VS_VAL_UNSET is not set"},
		{"missing ca_file", with(func(c *Config) { c.CAFile = filepath.Join(dir, "absent.pem") }), "ca_file"},
		{"ca_file not PEM", with(func(c *Config) { c.CAFile = notPEM }), "ca_file " + notPEM + ": no PEM certificate"},
		{"negative address_wait", with(func(c *Config) { c.AddressWait = new(-time.Second) }), "address_wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error quotes the url: %v", err)
			}
			// New checks the same before it connects.
			_, nerr := New(t.Context(), tc.cfg)
			if nerr == nil || nerr.Error() != err.Error() {
				t.Errorf("New = %v, want Validate's error %v", nerr, err)
			}
		})
	}
}
