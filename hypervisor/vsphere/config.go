package vsphere

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config says which vCenter (or ESXi host) to use, where clones go and
// where the credentials are. It holds no secret itself: credentials are
// read from a file or from environment variables when the client logs in,
// so a Config can be logged or printed safely.
type Config struct {
	// URL of the vSphere API, such as https://vcenter.example.com/sdk
	// ("/sdk" is added when the path is empty). It must not carry a
	// username or password.
	URL string `yaml:"url"`
	// Insecure skips verifying the server's certificate (labs, tests).
	Insecure bool `yaml:"insecure"`
	// CAFile is a PEM file of the certificates to trust, for a vCenter
	// signed by its own CA.
	CAFile string `yaml:"ca_file"`

	// Datacenter is the datacenter's name or inventory path; empty means
	// the only one.
	Datacenter string `yaml:"datacenter"`
	// Folder is the VM folder clones are made in (an inventory path, or
	// a path relative to the datacenter's vm folder); empty means the
	// datacenter's vm folder. A clone's name is looked for in the whole
	// datacenter, not only here.
	Folder string `yaml:"folder"`
	// ResourcePool gives clones their resources; empty means the
	// template's pool.
	ResourcePool string `yaml:"resource_pool"`
	// Host places linked clones; empty means the template's host. An
	// Instant Clone always runs on its template's host.
	Host string `yaml:"host"`

	// CredentialsFile names a file holding the username on its first line
	// and the password on its second. It should be readable by the daemon
	// only (a warning is logged otherwise).
	CredentialsFile string `yaml:"credentials_file"`
	// UsernameEnv and PasswordEnv name the environment variables holding
	// the username and the password, when CredentialsFile is not used.
	UsernameEnv string `yaml:"username_env"`
	PasswordEnv string `yaml:"password_env"`

	// DisableInstantClone makes Clone go straight to the linked-clone
	// fallback (for a vCenter where Instant Clone is known to be
	// unavailable or unwanted).
	DisableInstantClone bool `yaml:"disable_instant_clone"`
	// AddressWait is how long Clone waits for the clone's guest to report
	// an IP address; nil (absent) means DefaultAddressWait, 0 returns at
	// once with whatever address is known. Lookup reports the address once
	// there is one, which is where the expand saga keeps looking until its
	// finalize deadline.
	AddressWait *time.Duration `yaml:"address_wait"`

	// Logger receives the client's log lines; nil means slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Validate performs every check of the configuration that needs no
// connection: url (present, http or https, a host, no username, password
// or query in it), ca_file (readable, with PEM certificates), where the
// credentials are (credentials_file readable, or both username_env and
// password_env set in the environment, not both sources) and address_wait
// (not negative). New calls it first; a configuration parser calls it to
// check the section without connecting (a dry run). Its messages name the
// keys as the agent's file spells them, and never quote the URL or what a
// file holds.
func (c Config) Validate() error {
	if _, err := c.apiURL(); err != nil {
		return err
	}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return fmt.Errorf("vsphere: ca_file: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			return fmt.Errorf("vsphere: ca_file %s: no PEM certificate in it", c.CAFile)
		}
	}
	if err := c.credentialSource(); err != nil {
		return err
	}
	if w := c.addressWait(); w < 0 {
		return fmt.Errorf("vsphere: address_wait %v: must not be negative", w)
	}
	return nil
}

// DefaultAddressWait is how long Clone waits for a new clone's address
// when Config.AddressWait is absent.
const DefaultAddressWait = 30 * time.Second

func (c Config) addressWait() time.Duration {
	if c.AddressWait == nil {
		return DefaultAddressWait
	}
	return *c.AddressWait
}

// credentialSource checks that exactly one source of credentials is
// configured and that it can be read, without keeping what it holds.
func (c Config) credentialSource() error {
	fromEnv := c.UsernameEnv != "" || c.PasswordEnv != ""
	switch {
	case c.CredentialsFile != "" && fromEnv:
		return errors.New("vsphere: credentials: set either credentials_file or username_env and password_env, not both")
	case c.CredentialsFile != "":
		f, err := os.Open(c.CredentialsFile)
		if err != nil {
			return fmt.Errorf("vsphere: credentials_file: %w", err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("vsphere: credentials_file: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("vsphere: credentials_file %s: not a regular file", c.CredentialsFile)
		}
		return nil
	case c.UsernameEnv != "" && c.PasswordEnv != "":
		for _, kv := range [][2]string{{"username_env", c.UsernameEnv}, {"password_env", c.PasswordEnv}} {
			if v, ok := os.LookupEnv(kv[1]); !ok || v == "" {
				return fmt.Errorf("vsphere: %s: environment variable %s is not set", kv[0], kv[1])
			}
		}
		return nil
	case fromEnv:
		return errors.New("vsphere: credentials: both the username and the password environment variable are required (username_env and password_env)")
	default:
		return errors.New("vsphere: credentials: set credentials_file or the username and password environment variables (username_env, password_env)")
	}
}

// apiURL parses and checks Config.URL. Its errors never quote the URL,
// which might carry a password despite the rule.
func (c Config) apiURL() (*url.URL, error) {
	if c.URL == "" {
		return nil, errors.New("vsphere: url is required")
	}
	s := c.URL
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		// Not even the parser's reason: the url.Error quotes the URL, and
		// its inner error quotes parts of it (a port, a host, an escape).
		return nil, errors.New("vsphere: url: not a valid URL (not quoted here: it may hold a secret)")
	}
	if u.User != nil {
		return nil, errors.New("vsphere: url must not carry a username or password; use credentials_file or the username/password environment variables")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" {
		// A query is where credentials end up when they are kept out of
		// the userinfo (?user=…&password=…); the SDK takes none.
		return nil, errors.New("vsphere: url must not carry a query or fragment (credentials belong in credentials_file or the username/password environment variables)")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("vsphere: url scheme %q: want https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("vsphere: url has no host")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/sdk"
	}
	return u, nil
}

// credentials reads the username and password from their source. Its
// errors name the source, never what was read.
func (c Config) credentials(log *slog.Logger) (*url.Userinfo, error) {
	fromEnv := c.UsernameEnv != "" || c.PasswordEnv != ""
	switch {
	case c.CredentialsFile != "" && !fromEnv:
		return readCredentialsFile(c.CredentialsFile, log)
	case c.CredentialsFile == "" && c.UsernameEnv != "" && c.PasswordEnv != "":
		user, ok := os.LookupEnv(c.UsernameEnv)
		if !ok || user == "" {
			return nil, fmt.Errorf("vsphere: username_env: environment variable %s is not set", c.UsernameEnv)
		}
		pass, ok := os.LookupEnv(c.PasswordEnv)
		if !ok || pass == "" {
			return nil, fmt.Errorf("vsphere: password_env: environment variable %s is not set", c.PasswordEnv)
		}
		return url.UserPassword(user, pass), nil
	}
	// Neither, both or half: credentialSource says which.
	if err := c.credentialSource(); err != nil {
		return nil, err
	}
	return nil, errors.New("vsphere: credentials: no usable source")
}

func readCredentialsFile(path string, log *slog.Logger) (*url.Userinfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("vsphere: credentials_file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("vsphere credentials file is readable by group or others", "file", path, "mode", fi.Mode().Perm().String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vsphere: credentials_file: %w", err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	if len(lines) < 2 {
		return nil, fmt.Errorf("vsphere: credentials_file %s: want the username on the first line and the password on the second", path)
	}
	user := strings.TrimSuffix(lines[0], "\r")
	pass := strings.TrimSuffix(lines[1], "\r")
	if user == "" || pass == "" {
		return nil, fmt.Errorf("vsphere: credentials_file %s: want the username on the first line and the password on the second", path)
	}
	return url.UserPassword(user, pass), nil
}
