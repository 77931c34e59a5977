package agent

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// serverCert writes a certificate for 127.0.0.1 and its key, and returns
// their files and the pool of the CA that signed it.
func serverCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ca := testenv.NewCA(t, "mitosis API test CA")
	_, certFile, keyFile = ca.Files(t, "agent")
	return certFile, keyFile, ca.Pool
}

// With api.tls the agent speaks only HTTPS (TLS 1.2 or later).
func TestTheAPIOverTLS(t *testing.T) {
	certFile, keyFile, pool := serverCert(t)
	cfg, err := config.Parse([]byte(simulatedFile+"api:\n  tls: {cert_file: "+certFile+", key_file: "+keyFile+"}\n"), "tls.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := runAgent(t, cfg)

	good := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodGet, "https://"+a.Addr()+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer t0k")
	resp, err := good.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("HTTPS with the right CA: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + a.Addr() + "/-/healthy"); err == nil && resp.StatusCode == http.StatusOK {
		t.Error("plain HTTP answered")
	}
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get("https://" + a.Addr() + "/-/healthy"); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	if _, err := config.Parse([]byte(simulatedFile+"api:\n  tls: {cert_file: "+certFile+"}\n"), "tls.yaml"); err == nil {
		t.Error("a certificate without its key accepted")
	}
}
