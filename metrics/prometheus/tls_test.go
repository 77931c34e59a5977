package prometheus_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
)

// clientCert makes a CA and a client certificate it signs, as PEM.
func clientCert(t *testing.T) (caPEM, certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	ca := testenv.NewCA(t, "test CA")
	certPEM, keyPEM = ca.Issue(t, "mitosis")
	return ca.PEM, certPEM, keyPEM, ca.Pool
}

func TestTLSClientCertificateFromFiles(t *testing.T) {
	f := newFake()
	good(f)
	_, certPEM, keyPEM, pool := clientCert(t)
	srv := httptest.NewUnstartedServer(f)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	cert, key := writeFile(t, "client.pem", string(certPEM)), writeFile(t, "client-key.pem", string(keyPEM))

	with := newSource(t, srv.URL, func(c *prometheus.Config) { c.TLS = prometheus.TLS{CAFile: ca, CertFile: cert, KeyFile: key} })
	if snap := with.Snapshot(context.Background(), "c", threeNodes); snap.Unavailable != "" {
		t.Fatalf("with the client certificate: %s", snap.Unavailable)
	}
	without := newSource(t, srv.URL, func(c *prometheus.Config) { c.TLS = prometheus.TLS{CAFile: ca} })
	if snap := without.Snapshot(context.Background(), "c", threeNodes); !strings.Contains(snap.Unavailable, "prometheus unreachable") {
		t.Errorf("without it: %q", snap.Unavailable)
	}
	// A key file that is not a key: New refuses, naming the field and not the contents.
	bad := writeFile(t, "bad-key.pem", canary)
	_, err := prometheus.New(prometheus.Config{URL: srv.URL, Queries: queries(),
		TLS: prometheus.TLS{CertFile: cert, KeyFile: bad}}, nil)
	if err == nil || !strings.Contains(err.Error(), "tls.cert_file, tls.key_file") || strings.Contains(err.Error(), canary) {
		t.Errorf("a bad key: %v", err)
	}
}

// Every file the configuration names is checked when it is made: a
// directory, an empty secret, a CA that is not PEM or a key that is not
// the certificate's would otherwise fail every snapshot. Each error names
// the key and the file, never a secret.
func TestNewRefusesSecretAndTLSFilesThatCannotServe(t *testing.T) {
	_, certPEM, keyPEM, _ := clientCert(t)
	_, _, otherKeyPEM, _ := clientCert(t)
	dir := t.TempDir()
	cert, key := writeFile(t, "client.pem", string(certPEM)), writeFile(t, "client-key.pem", string(keyPEM))
	otherKey := writeFile(t, "other-key.pem", string(otherKeyPEM))
	empty, blank := writeFile(t, "empty", ""), writeFile(t, "blank", "\n")
	notPEM := writeFile(t, "ca.txt", canary)
	for _, tc := range []struct {
		name, want string
		mod        func(c *prometheus.Config)
	}{
		{"a password file that is a directory", "basic_auth.password_file: " + dir + " is a directory", func(c *prometheus.Config) {
			c.BasicAuth = &prometheus.BasicAuth{Username: "u", PasswordFile: dir}
		}},
		{"an empty password file", "basic_auth.password_file: " + empty + " is empty", func(c *prometheus.Config) {
			c.BasicAuth = &prometheus.BasicAuth{Username: "u", PasswordFile: empty}
		}},
		{"a token file that is a directory", "bearer_token_file: " + dir + " is a directory", func(c *prometheus.Config) { c.BearerTokenFile = dir }},
		{"a token file holding only a newline", "bearer_token_file: " + blank + " is empty", func(c *prometheus.Config) { c.BearerTokenFile = blank }},
		{"a token file that is a device", "bearer_token_file: /dev/null is not a regular file", func(c *prometheus.Config) { c.BearerTokenFile = "/dev/null" }},
		{"a missing CA file", "tls.ca_file: cannot open /nonexistent/ca.pem", func(c *prometheus.Config) { c.TLS.CAFile = "/nonexistent/ca.pem" }},
		{"a CA file that is a directory", "tls.ca_file: " + dir + " is a directory", func(c *prometheus.Config) { c.TLS.CAFile = dir }},
		{"a CA file that is not PEM", "tls.ca_file: " + notPEM + " holds no PEM certificate", func(c *prometheus.Config) { c.TLS.CAFile = notPEM }},
		{"a missing certificate", "tls.cert_file: cannot open /nonexistent/c.pem", func(c *prometheus.Config) {
			c.TLS.CertFile, c.TLS.KeyFile = "/nonexistent/c.pem", key
		}},
		{"an empty key", "tls.key_file: " + empty + " is empty", func(c *prometheus.Config) { c.TLS.CertFile, c.TLS.KeyFile = cert, empty }},
		{"a key that is not the certificate's", "tls.cert_file, tls.key_file: " + cert + ", " + otherKey + ": tls: private key does not match public key", func(c *prometheus.Config) {
			c.TLS.CertFile, c.TLS.KeyFile = cert, otherKey
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := prometheus.Config{URL: "https://127.0.0.1:9090", Queries: queries()}
			tc.mod(&c)
			c.ApplyDefaults()
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), canary) {
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
			if _, err := prometheus.New(c, nil); err == nil || !strings.HasPrefix(err.Error(), "prometheus: "+tc.want) {
				t.Errorf("New: %v, want %q", err, tc.want)
			}
		})
	}
	// The same files, good, are accepted.
	c := prometheus.Config{URL: "https://127.0.0.1:9090", Queries: queries(), BearerTokenFile: writeFile(t, "token", canary+"\n"),
		TLS: prometheus.TLS{CertFile: cert, KeyFile: key}}
	if _, err := prometheus.New(c, nil); err != nil {
		t.Errorf("good files: %v", err)
	}
}
