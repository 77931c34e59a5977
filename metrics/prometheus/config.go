package prometheus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults.
const (
	// DefaultTimeout bounds one snapshot (all its queries).
	DefaultTimeout = 10 * time.Second
	// DefaultScrapeInterval is Prometheus's own default scrape interval.
	DefaultScrapeInterval = time.Minute
	// DefaultNodeLabel is the label a per-node query is matched on.
	DefaultNodeLabel = "instance"
)

// How a per-node query's label is matched against a node.
const (
	// MatchAddress matches the label against plan.Node.Address, exactly
	// (with instance, the node must be registered with the address
	// Prometheus scrapes, host:port).
	MatchAddress = "address"
	// MatchID matches the label against plan.Node.ID.
	MatchID = "id"
)

// Config is the Prometheus metrics source's configuration (the metrics
// section of the agent's file).
//
//	url: https://prometheus.example:9090
//	timeout: 5s
//	scrape_interval: 15s          # staleness defaults to twice this
//	bearer_token_file: /etc/mitosis/prometheus.token
//	tls: {ca_file: /etc/mitosis/prometheus-ca.pem}
//	queries:
//	  - {name: sessions, query: 'sum(app_sessions)'}
//	  - {name: cpu, query: 'app_cpu_ratio', per_node: true, node_label: instance, match: address}
type Config struct {
	// URL is Prometheus's base URL (scheme, host, optional path prefix).
	// It must not carry credentials.
	URL string `yaml:"url"`
	// Timeout bounds one snapshot, every query of it; 0 means DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// ScrapeInterval is the scrape interval of the targets queried; 0
	// means DefaultScrapeInterval. It only sets Staleness's default.
	ScrapeInterval time.Duration `yaml:"scrape_interval"`
	// Staleness is the oldest a sample may be; 0 means twice ScrapeInterval.
	Staleness time.Duration `yaml:"staleness"`

	// BasicAuth, BearerTokenFile: at most one. The secrets are read from
	// files, on every request (so a rotated secret is picked up), and
	// never logged nor quoted in errors.
	BasicAuth       *BasicAuth `yaml:"basic_auth"`
	BearerTokenFile string     `yaml:"bearer_token_file"`
	TLS             TLS        `yaml:"tls"`

	// Queries are the named PromQL queries of every snapshot.
	Queries []Query `yaml:"queries"`
}

// BasicAuth is HTTP basic authentication with the password in a file.
type BasicAuth struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// TLS configures the connection to an https URL.
type TLS struct {
	// CAFile holds the PEM certificates that sign Prometheus's; empty
	// means the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate, both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name the server's certificate is checked for.
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Query is one named PromQL query.
type Query struct {
	// Name is the metric's name in the snapshot (and the policy input).
	Name string `yaml:"name"`
	// Query is the PromQL expression, evaluated at the current time.
	Query string `yaml:"query"`
	// PerNode: the query returns a vector with a series per node, mapped
	// to nodes by NodeLabel. Otherwise it is cluster-level: a scalar or a
	// vector of exactly one sample.
	PerNode bool `yaml:"per_node"`
	// NodeLabel is the label naming the node (per_node only); empty means
	// DefaultNodeLabel.
	NodeLabel string `yaml:"node_label"`
	// Match says what NodeLabel holds: MatchAddress (the default) or MatchID.
	Match string `yaml:"match"`
}

// ApplyDefaults fills what is unset.
func (c *Config) ApplyDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ScrapeInterval == 0 {
		c.ScrapeInterval = DefaultScrapeInterval
	}
	if c.Staleness == 0 {
		c.Staleness = 2 * c.ScrapeInterval
	}
	for i := range c.Queries {
		q := &c.Queries[i]
		if q.PerNode && q.NodeLabel == "" {
			q.NodeLabel = DefaultNodeLabel
		}
		if q.PerNode && q.Match == "" {
			q.Match = MatchAddress
		}
	}
}

// Validate checks the configuration (after ApplyDefaults), naming the
// field at fault. Its errors never quote the URL nor a secret.
func (c Config) Validate() error {
	if c.URL == "" {
		return errors.New("url: required")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return errors.New("url: not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("url: the scheme must be http or https")
	case u.Host == "":
		return errors.New("url: no host")
	case u.User != nil:
		return errors.New("url: must not carry credentials (use basic_auth.password_file)")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("url: must not have a query or a fragment")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"timeout", c.Timeout}, {"scrape_interval", c.ScrapeInterval}, {"staleness", c.Staleness}} {
		if d.v <= 0 {
			return fmt.Errorf("%s: must be positive", d.name)
		}
	}
	if c.BasicAuth != nil && c.BearerTokenFile != "" {
		return errors.New("basic_auth: not with bearer_token_file (choose one)")
	}
	if b := c.BasicAuth; b != nil {
		if b.Username == "" {
			return errors.New("basic_auth.username: required")
		}
		if b.PasswordFile == "" {
			return errors.New("basic_auth.password_file: required")
		}
		if _, err := readSecret(b.PasswordFile); err != nil {
			return fmt.Errorf("basic_auth.password_file: %w", err)
		}
	}
	if c.BearerTokenFile != "" {
		if _, err := readSecret(c.BearerTokenFile); err != nil {
			return fmt.Errorf("bearer_token_file: %w", err)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls.cert_file: cert_file and key_file go together")
	}
	if u.Scheme == "http" && c.TLS != (TLS{}) {
		return errors.New("tls: given, but url is http")
	}
	// The TLS material is loaded as the transport will load it, so that a
	// file that is missing, not PEM or a key that does not match its
	// certificate is refused at start, naming its key.
	if _, err := c.TLS.config(); err != nil {
		return err
	}
	if len(c.Queries) == 0 {
		return errors.New("queries: at least one is needed")
	}
	names := map[string]bool{}
	for i, q := range c.Queries {
		at := fmt.Sprintf("queries[%d]", i)
		switch {
		case q.Name == "":
			return fmt.Errorf("%s.name: required", at)
		case names[q.Name]:
			return fmt.Errorf("%s.name: %q is used twice", at, q.Name)
		case q.Query == "":
			return fmt.Errorf("%s.query: required", at)
		}
		names[q.Name] = true
		if !q.PerNode {
			if q.NodeLabel != "" {
				return fmt.Errorf("%s.node_label: only for a per_node query", at)
			}
			if q.Match != "" {
				return fmt.Errorf("%s.match: only for a per_node query", at)
			}
			continue
		}
		if q.NodeLabel == "" {
			return fmt.Errorf("%s.node_label: required", at)
		}
		if q.Match != MatchAddress && q.Match != MatchID {
			return fmt.Errorf("%s.match: %q is neither id nor address", at, q.Match)
		}
	}
	return nil
}

// regularFile checks that path names a regular file (following symbolic
// links) that can be opened for reading: not a directory, a device or a
// pipe, which would fail or block on every request.
func regularFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cannot open %s: %w", path, errors.Unwrap(err))
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory, want a file", path)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot open %s: %w", path, errors.Unwrap(err))
	}
	return f.Close()
}

// readSecret reads a secret file (a regular file, not empty once its
// trailing newline is dropped); its errors never hold the contents.
func readSecret(path string) (string, error) {
	if err := regularFile(path); err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// config loads the TLS material from its files; nil when t is empty. Its
// errors name the key at fault and the file, never a key's contents.
func (t TLS) config() (*tls.Config, error) {
	if t == (TLS{}) {
		return nil, nil
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // the operator's explicit choice
	}
	if t.CAFile != "" {
		if err := regularFile(t.CAFile); err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: cannot read %s: %w", t.CAFile, errors.Unwrap(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if err := regularFile(t.CertFile); err != nil {
			return nil, fmt.Errorf("tls.cert_file: %w", err)
		}
		if _, err := readSecret(t.KeyFile); err != nil {
			return nil, fmt.Errorf("tls.key_file: %w", err)
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			// LoadX509KeyPair's errors name the files' problems, not their contents.
			return nil, fmt.Errorf("tls.cert_file, tls.key_file: %s, %s: %w", t.CertFile, t.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
