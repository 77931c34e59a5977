package vsphere

import (
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
	// datacenter's vm folder. A clone's name is looked for here before
	// cloning.
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
	// an IP address; 0 returns at once, with whatever address is known.
	AddressWait time.Duration `yaml:"address_wait"`

	// Logger receives the client's log lines; nil means slog.Default().
	Logger *slog.Logger `yaml:"-"`
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
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error quotes the URL itself
		}
		return nil, fmt.Errorf("vsphere: url: %w", err)
	}
	if u.User != nil {
		return nil, errors.New("vsphere: url must not carry a username or password; use credentials_file or the username/password environment variables")
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
	case c.CredentialsFile != "" && fromEnv:
		return nil, errors.New("vsphere: credentials: set either credentials_file or the environment variables, not both")
	case c.CredentialsFile != "":
		return readCredentialsFile(c.CredentialsFile, log)
	case c.UsernameEnv != "" && c.PasswordEnv != "":
		user, ok := os.LookupEnv(c.UsernameEnv)
		if !ok || user == "" {
			return nil, fmt.Errorf("vsphere: credentials: environment variable %s is not set", c.UsernameEnv)
		}
		pass, ok := os.LookupEnv(c.PasswordEnv)
		if !ok || pass == "" {
			return nil, fmt.Errorf("vsphere: credentials: environment variable %s is not set", c.PasswordEnv)
		}
		return url.UserPassword(user, pass), nil
	case fromEnv:
		return nil, errors.New("vsphere: credentials: both the username and the password environment variable are required")
	default:
		return nil, errors.New("vsphere: credentials: set credentials_file or the username and password environment variables")
	}
}

func readCredentialsFile(path string, log *slog.Logger) (*url.Userinfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("vsphere: credentials file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("vsphere credentials file is readable by group or others", "file", path, "mode", fi.Mode().Perm().String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vsphere: credentials file: %w", err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	if len(lines) < 2 {
		return nil, fmt.Errorf("vsphere: credentials file %s: want the username on the first line and the password on the second", path)
	}
	user := strings.TrimSuffix(lines[0], "\r")
	pass := strings.TrimSuffix(lines[1], "\r")
	if user == "" || pass == "" {
		return nil, fmt.Errorf("vsphere: credentials file %s: want the username on the first line and the password on the second", path)
	}
	return url.UserPassword(user, pass), nil
}
