package prometheus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/metrics/prometheus"
)

// clientCert makes a CA and a client certificate it signs, as PEM.
func clientCert(t *testing.T) (caPEM, certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mitosis"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), pool
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
