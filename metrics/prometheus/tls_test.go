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
