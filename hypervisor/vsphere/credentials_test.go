package vsphere

import (
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

const (
	canaryUser = "canary-user-5f2c91"
	canaryPass = "canary-pass-8d41e7"
)

// leakCheck collects every error string and scans them, with the debug
// log, for the canary credentials.
type leakCheck struct {
	logs testenv.Buffer
	errs []string
}

func (l *leakCheck) err(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	l.errs = append(l.errs, what+": "+err.Error())
}

func (l *leakCheck) check(t *testing.T) {
	t.Helper()
	for _, secret := range []string{canaryUser, canaryPass} {
		for _, e := range l.errs {
			if strings.Contains(e, secret) {
				t.Errorf("an error carries a credential: %s", e)
			}
		}
		for line := range strings.Lines(l.logs.String()) {
			if strings.Contains(line, secret) {
				t.Errorf("a log line carries a credential: %s", line)
			}
		}
	}
	if l.logs.String() == "" {
		t.Error("nothing was logged: the scan proves nothing")
	}
	t.Logf("scanned %d errors and %d log lines", len(l.errs), strings.Count(l.logs.String(), "\n"))
}

func TestCredentialsNeverLogged(t *testing.T) {
	var l leakCheck
	log := debugLogger(&l.logs)

	// The server knows the canary user with another password: login fails.
	wrong := startVCSim(t, canaryUser, "the-right-password")
	cfg := wrong.Config(t, log)
	cfg.CredentialsFile = writeCredentials(t, canaryUser, canaryPass)
	_, err := New(t.Context(), cfg)
	l.err(t, "login failure (file)", err)

	t.Setenv("TEST_VSPHERE_USER", canaryUser)
	t.Setenv("TEST_VSPHERE_PASSWORD", canaryPass)
	cfg.CredentialsFile, cfg.UsernameEnv, cfg.PasswordEnv = "", "TEST_VSPHERE_USER", "TEST_VSPHERE_PASSWORD"
	_, err = New(t.Context(), cfg)
	l.err(t, "login failure (env)", err)

	// Credentials put in the URL against the rules, well-formed or not.
	for _, u := range []string{
		"https://" + canaryUser + ":" + canaryPass + "@127.0.0.1/sdk",
		"https://" + canaryUser + ":" + canaryPass + "@127.0.0.1:99999999/sdk",
		"https://" + canaryUser + ":" + canaryPass + "@127.0.0.1/%zz",
		canaryUser + ":" + canaryPass + "@127.0.0.1",
	} {
		bad := cfg
		bad.URL = u
		_, err := New(t.Context(), bad)
		l.err(t, "url with credentials", err)
	}

	// A credentials file that is not two lines.
	f := filepath.Join(t.TempDir(), "one-line")
	if err := os.WriteFile(f, []byte(canaryUser+":"+canaryPass), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := cfg
	bad.CredentialsFile, bad.UsernameEnv, bad.PasswordEnv = f, "", ""
	_, err = New(t.Context(), bad)
	l.err(t, "malformed credentials file", err)

	// Nobody listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	down := cfg
	down.URL = "https://" + addr + "/sdk"
	_, err = New(t.Context(), down)
	l.err(t, "server down", err)

	// Logged in with the canary credentials, every kind of failure.
	right := startVCSim(t, canaryUser, canaryPass)
	ok := right.Config(t, log)
	ok.CredentialsFile = writeCredentials(t, canaryUser, canaryPass)
	c := newClient(t, ok)
	_, err = c.Clone(t.Context(), req("op1", "no-such-template", 1))
	l.err(t, "clone of a missing template", err)
	if !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("clone of a missing template: %v, want ErrNotFound", err)
	}
	if _, err := c.Clone(t.Context(), req("op2", right.Template, 1)); err != nil {
		t.Fatal(err)
	}
	taken := req("op3", right.Template, 1)
	taken.Name = "mitosis-op2"
	_, err = c.Clone(t.Context(), taken)
	l.err(t, "clone of a taken name", err)
	_, err = c.Lookup(t.Context(), "no-such-vm")
	l.err(t, "lookup of a missing vm", err)
	if err := c.sm.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(t.Context(), "mitosis-op2"); err != nil { // logs in again
		t.Fatal(err)
	}
	// The credentials change underneath: the next re-login fails.
	if err := os.WriteFile(c.cfg.CredentialsFile, []byte(canaryUser+"\n"+canaryPass+"-rotated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.sm.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err = c.Lookup(t.Context(), right.Template)
	l.err(t, "re-login with changed credentials", err)

	l.check(t)
	for _, e := range l.errs {
		t.Log(e)
	}
}

func TestCredentialSources(t *testing.T) {
	log := debugLogger(t.Output())
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("TEST_VS_USER", "u")
	t.Setenv("TEST_VS_PASS", "p w")
	for _, tc := range []struct {
		name       string
		cfg        Config
		user, pass string
		err        string
	}{
		{"file", Config{CredentialsFile: write("ok", "admin@vsphere.local\npa:ss word\n")}, "admin@vsphere.local", "pa:ss word", ""},
		{"file with CRLF", Config{CredentialsFile: write("crlf", "admin\r\nsecret\r\n")}, "admin", "secret", ""},
		{"file without final newline", Config{CredentialsFile: write("nonl", "admin\nsecret")}, "admin", "secret", ""},
		{"env", Config{UsernameEnv: "TEST_VS_USER", PasswordEnv: "TEST_VS_PASS"}, "u", "p w", ""},
		{"none", Config{}, "", "", "set credentials_file"},
		{"both", Config{CredentialsFile: "x", UsernameEnv: "TEST_VS_USER", PasswordEnv: "TEST_VS_PASS"}, "", "", "not both"},
		{"env half", Config{UsernameEnv: "TEST_VS_USER"}, "", "", "both the username and the password"},
		{"env unset", Config{UsernameEnv: "TEST_VS_USER", PasswordEnv: "TEST_VS_NOT_SET"}, "", "", "TEST_VS_NOT_SET is not set"},
		{"file missing", Config{CredentialsFile: filepath.Join(dir, "absent")}, "", "", "no such file"},
		{"file empty password", Config{CredentialsFile: write("nopw", "admin\n\n")}, "", "", "password on the second"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := tc.cfg.credentials(log)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pass, _ := u.Password()
			if u.Username() != tc.user || pass != tc.pass {
				t.Errorf("got %q/%q, want %q/%q", u.Username(), pass, tc.user, tc.pass)
			}
		})
	}
}

func TestURLChecks(t *testing.T) {
	for in, want := range map[string]string{
		"vc.example.com":                  "https://vc.example.com/sdk",
		"https://vc.example.com":          "https://vc.example.com/sdk",
		"https://vc.example.com/":         "https://vc.example.com/sdk",
		"https://vc.example.com:8443/sdk": "https://vc.example.com:8443/sdk",
	} {
		u, err := Config{URL: in}.apiURL()
		if err != nil || u.String() != want {
			t.Errorf("apiURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, in := range []string{"", "ftp://vc", "https://", "https://u@vc/sdk"} {
		if _, err := (Config{URL: in}).apiURL(); err == nil {
			t.Errorf("apiURL(%q) accepted", in)
		}
	}
}

// A server whose login fault quotes what it got must not get it into our
// errors or logs.
func TestRedactWithholdsAnEchoingServer(t *testing.T) {
	creds := url.UserPassword(canaryUser, canaryPass)
	for _, msg := range []string{"bad password " + canaryPass, "no user " + canaryUser} {
		if got := redact(errors.New(msg), creds).Error(); strings.Contains(got, canaryPass) || strings.Contains(got, canaryUser) || !strings.Contains(got, "withheld") {
			t.Errorf("redact(%q) = %q", msg, got)
		}
	}
	plain := errors.New("Login failure")
	if got := redact(plain, creds); got != plain {
		t.Errorf("redact changed an innocent error: %v", got)
	}
}
