package vsphere

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/simulator"

	"github.com/mitosis-autoscaler/mitosis/hypervisor/vsphere/vspheretest"
)

// vcsim is govmomi's vCenter simulator (vspheretest.Sim, shared with the
// end-to-end tests), with the names this package's tests use for its
// model and server.
type vcsim struct {
	*vspheretest.Sim
	model *simulator.Model
	srv   *simulator.Server
}

func startVCSim(t testing.TB, user, password string) *vcsim {
	t.Helper()
	s := vspheretest.Start(t, user, password)
	return &vcsim{Sim: s, model: s.Model, srv: s.Server}
}

// Config returns a Config for the simulator with credentials in a file
// and logs into log.
func (s *vcsim) Config(t testing.TB, log *slog.Logger) Config {
	t.Helper()
	return Config{
		URL:             s.URL(),
		CAFile:          s.CAFile,
		CredentialsFile: s.CredentialsFile(t),
		// vcsim's clones report no guest address: not waiting for one
		// keeps each clone at its simulator's speed.
		AddressWait: new(time.Duration(0)),
		Logger:      log,
	}
}

func writeCredentials(t testing.TB, user, password string) string {
	t.Helper()
	return vspheretest.WriteCredentials(t, user, password)
}

// soapRecorder keeps the SOAP bodies a client sends.
type soapRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	sent []string
}

func (r *soapRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		_ = req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(b))
		r.mu.Lock()
		r.sent = append(r.sent, string(b))
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

// Sent returns the bodies that contain s.
func (r *soapRecorder) Sent(s string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.sent {
		if strings.Contains(b, s) {
			out = append(out, b)
		}
	}
	return out
}

// recordSOAP makes c's SOAP requests go through a recorder.
func recordSOAP(c *Client) *soapRecorder {
	r := &soapRecorder{next: c.vc.Client.Transport}
	c.vc.Client.Transport = r
	return r
}

func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}
