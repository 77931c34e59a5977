package client_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/client"
	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

const token = "s3cret-canary-token"

// request is what the stub saw.
type request struct {
	Method, Path, Query, Auth, Body string
}

// stub answers every request with status and body, and records it.
func stub(t *testing.T, status int, body string) (*client.Client, *request) {
	t.Helper()
	seen := &request{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*seen = request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), string(b)}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/", token, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c, seen
}

// TestEachMethodCallsItsEndpoint checks the method, path, query and body of
// every endpoint's call, the bearer token, and the answer decoded.
func TestEachMethodCallsItsEndpoint(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 14, 2, 0, 0, time.UTC)
	cases := []struct {
		name              string
		call              func(*client.Client) (any, error)
		method, path, qry string
		body              string // the JSON sent, "" for none
		answer            string
		want              any
	}{
		{"whoami", func(c *client.Client) (any, error) { return c.Whoami(ctx) },
			"GET", "/v1/whoami", "", "", `{"name":"oncall","role":"operate"}`, wire.Whoami{Name: "oncall", Role: "operate"}},
		{"nodes, the cluster escaped", func(c *client.Client) (any, error) { return c.Nodes(ctx, "web/a") },
			"GET", "/v1/clusters/web/a/nodes", "", "", `[{"id":"web-1","parent":"web-0","lineage_depth":1}]`,
			[]plan.Node{{ID: "web-1", Parent: "web-0", LineageDepth: 1}}},
		{"targets of a cluster at a port", func(c *client.Client) (any, error) { return c.Targets(ctx, "web/a", 9100) },
			"GET", "/v1/targets", "cluster=web%2Fa&port=9100", "",
			`[{"targets":["10.0.0.1:9100"],"labels":{"cluster":"web/a","node":"web-1","__meta_mitosis_parent":"web-0"}}]`,
			[]wire.TargetGroup{{Targets: []string{"10.0.0.1:9100"}, Labels: map[string]string{"cluster": "web/a", "node": "web-1", "__meta_mitosis_parent": "web-0"}}}},
		{"targets of every cluster, none", func(c *client.Client) (any, error) { return c.Targets(ctx, "", 0) },
			"GET", "/v1/targets", "", "", `[]`, []wire.TargetGroup{}},
		{"operations with a limit", func(c *client.Client) (any, error) { return c.Operations(ctx, "web", 5) },
			"GET", "/v1/clusters/web/operations", "limit=5", "", `[{"id":"op-1","kind":"expand"}]`,
			[]plan.Operation{{ID: "op-1", Kind: plan.OpExpand}}},
		{"operations, the agent's default", func(c *client.Client) (any, error) { return c.Operations(ctx, "web", 0) },
			"GET", "/v1/clusters/web/operations", "", "", `[]`, []plan.Operation{}},
		{"one operation", func(c *client.Client) (any, error) { return c.Operation(ctx, "op-1") },
			"GET", "/v1/operations/op-1", "", "", `{"id":"op-1"}`, plan.Operation{ID: "op-1"}},
		{"decisions", func(c *client.Client) (any, error) { return c.Decisions(ctx, "web", 3) },
			"GET", "/v1/clusters/web/decisions", "limit=3", "", `[{"seq":7}]`, []plan.DecisionRecord{{Seq: 7}}},
		{"why at a time", func(c *client.Client) (any, error) { return c.Why(ctx, "web", at) },
			"GET", "/v1/clusters/web/why", "at=2026-11-27T14%3A02%3A00Z", "", `{"seq":7}`, plan.DecisionRecord{Seq: 7}},
		{"why now", func(c *client.Client) (any, error) { return c.Why(ctx, "web", time.Time{}) },
			"GET", "/v1/clusters/web/why", "", "", `{"seq":8}`, plan.DecisionRecord{Seq: 8}},
		{"clone", func(c *client.Client) (any, error) { return c.Clone(ctx, "web", "web-1") },
			"POST", "/v1/clusters/web/clone", "", `{"template":"web-1"}`, `{"seq":9,"operations":["op-2"]}`,
			plan.DecisionRecord{Seq: 9, Operations: []string{"op-2"}}},
		{"detach", func(c *client.Client) (any, error) { return c.Detach(ctx, "web", "web-7") },
			"POST", "/v1/clusters/web/detach", "", `{"node":"web-7"}`, `{"seq":10,"operations":["op-3"]}`,
			plan.DecisionRecord{Seq: 10, Operations: []string{"op-3"}}},
		{"settings", func(c *client.Client) (any, error) { s, err := c.Settings(ctx, "web"); return s.Paused, err },
			"GET", "/v1/clusters/web/settings", "", "", `{"paused":true}`, true},
		{"pause, no body", func(c *client.Client) (any, error) { s, err := c.Pause(ctx, "web"); return s.Paused, err },
			"POST", "/v1/clusters/web/pause", "", "", `{"paused":true,"dry_run":false,"by":"oncall","at":"2026-11-27T14:02:00Z"}`, true},
		{"resume, no body", func(c *client.Client) (any, error) { s, err := c.Resume(ctx, "web"); return s.By, err },
			"POST", "/v1/clusters/web/resume", "", "", `{"paused":false,"by":"oncall"}`, "oncall"},
		{"dry run off", func(c *client.Client) (any, error) { s, err := c.SetDryRun(ctx, "web", false); return s.DryRun, err },
			"PUT", "/v1/clusters/web/dry-run", "", `{"enabled":false}`, `{"dry_run":false}`, false},
		{"audit", func(c *client.Client) (any, error) { return c.Audit(ctx, 2) },
			"GET", "/v1/audit", "limit=2", "", `[{"seq":1,"by":"oncall","action":"pause"}]`,
			[]plan.AuditRecord{{Seq: 1, By: "oncall", Action: "pause"}}},
		{"policy", func(c *client.Client) (any, error) {
			p, err := c.Policy(ctx)
			return p.Version + " " + p.Files["a.rego"], err
		},
			"GET", "/v1/policy", "", "", `{"version":"abc","files":{"a.rego":"package x"}}`, "abc package x"},
		{"validate a policy", func(c *client.Client) (any, error) {
			r, err := c.ValidatePolicy(ctx, map[string]string{"a.rego": "package x"})
			return r.Tests.Passed, err
		}, "POST", "/v1/policy/validate", "", `{"files":{"a.rego":"package x"}}`, `{"version":"abc","tests":{"passed":3,"failed":0}}`, 3},
		{"push a policy", func(c *client.Client) (any, error) {
			r, err := c.PushPolicy(ctx, map[string]string{"a.rego": "package x"})
			return r.Version, err
		}, "PUT", "/v1/policy", "", `{"files":{"a.rego":"package x"}}`, `{"version":"abc123def456","tests":{"passed":3,"failed":0}}`, "abc123def456"},
		{"push a policy with no tests", func(c *client.Client) (any, error) {
			r, err := c.PushPolicy(ctx, map[string]string{"a.rego": "package x"}, client.NoTests())
			return r.Version, err
		}, "PUT", "/v1/policy", "", `{"files":{"a.rego":"package x"},"no_tests":true}`, `{"version":"abc123def456","tests":{"passed":0,"failed":0}}`, "abc123def456"},
		{"peers", func(c *client.Client) (any, error) { s, err := c.Peers(ctx); return s.Leader, err },
			"GET", "/v1/peers", "", "", `{"leader":"a1"}`, "a1"},
		{"join a peer", func(c *client.Client) (any, error) {
			s, err := c.JoinPeer(ctx, "a2", "10.0.0.2:9809")
			return s.Leader, err
		},
			"POST", "/v1/peers", "", `{"id":"a2","address":"10.0.0.2:9809"}`, `{"leader":"a1"}`, "a1"},
		{"remove a peer", func(c *client.Client) (any, error) { s, err := c.RemovePeer(ctx, "a2"); return s.Leader, err },
			"DELETE", "/v1/peers/a2", "", "", `{"leader":"a1"}`, "a1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, seen := stub(t, http.StatusOK, tc.answer)
			got, err := tc.call(c)
			if err != nil {
				t.Fatal(err)
			}
			if seen.Method != tc.method || seen.Path != tc.path || seen.Query != tc.qry {
				t.Errorf("sent %s %s?%s, want %s %s?%s", seen.Method, seen.Path, seen.Query, tc.method, tc.path, tc.qry)
			}
			if seen.Auth != "Bearer "+token {
				t.Errorf("Authorization %q", seen.Auth)
			}
			if !sameJSON(seen.Body, tc.body) {
				t.Errorf("body %q, want %q", seen.Body, tc.body)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("answer %#v, want %#v", got, tc.want)
			}
		})
	}
	// The status, with the types of agent/wire.
	c, _ := stub(t, http.StatusOK, `{"version":"v1","clusters":[{"name":"web","min":2,"max":20,"size":3,"nodes":{"ready":3},"in_flight":1}]}`)
	st, err := c.Status(ctx)
	if err != nil || len(st.Clusters) != 1 || st.Clusters[0].Nodes[plan.NodeReady] != 3 || st.Clusters[0].InFlight != 1 {
		t.Errorf("status: %+v %v", st, err)
	}
}

func sameJSON(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

// TestErrorsAreTyped: an answer other than 2xx is an *Error with its
// status and the server's message, the reasons of a refused clone and the
// problems of a refused policy; the token is in none.
func TestErrorsAreTyped(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, answer string
		status       int
		call         func(*client.Client) error
		message      string
	}{
		{"401", `{"error":"a valid bearer token is required"}`, 401, func(c *client.Client) error { _, err := c.Status(ctx); return err }, "a valid bearer token is required"},
		{"403", `{"error":"grafana has the read role; this needs operate"}`, 403, func(c *client.Client) error { _, err := c.Pause(ctx, "web"); return err }, "grafana has the read role; this needs operate"},
		{"404", `{"error":"cluster \"db\" is not configured"}`, 404, func(c *client.Client) error { _, err := c.Nodes(ctx, "db"); return err }, `cluster "db" is not configured`},
		{"500 in plain text", "registry down\n", 500, func(c *client.Client) error { _, err := c.Decisions(ctx, "web", 0); return err }, "registry down"},
		{"502 with no body", "", 502, func(c *client.Client) error { _, err := c.Audit(ctx, 0); return err }, "Bad Gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := stub(t, tc.status, tc.answer)
			err := tc.call(c)
			var e *client.Error
			if !errors.As(err, &e) || e.Status != tc.status || e.Message != tc.message {
				t.Fatalf("%#v, want status %d message %q", err, tc.status, tc.message)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("the token is in %q", err)
			}
		})
	}

	t.Run("409 clone: the record and its reasons", func(t *testing.T) {
		c, _ := stub(t, 409, `{"seq":4,"decision":{"action":"expand"},"reasons":[{"code":"max_size","message":"at 20 of 20"}]}`)
		rec, err := c.Clone(ctx, "web", "web-1")
		var e *client.Error
		if !errors.As(err, &e) || e.Status != 409 || len(e.Reasons) != 1 || e.Reasons[0].Code != "max_size" || e.Message != "refused: max_size: at 20 of 20" {
			t.Fatalf("%#v", err)
		}
		if rec.Seq != 4 || len(rec.Reasons) != 1 {
			t.Errorf("record %+v", rec)
		}
	})
	t.Run("422 policy: the problems", func(t *testing.T) {
		c, _ := stub(t, 422, `{"error":"the policy does not compile","problems":["p.rego:3:1: rego_parse_error: unexpected eof"]}`)
		res, err := c.PushPolicy(ctx, map[string]string{"p.rego": "package p\n\nx := {\n"})
		var e *client.Error
		if !errors.As(err, &e) || e.Status != 422 || e.Message != "the policy does not compile" || len(e.Problems) != 1 {
			t.Fatalf("%#v", err)
		}
		if len(res.Problems) != 1 || !strings.HasPrefix(res.Problems[0], "p.rego:3:1") {
			t.Errorf("check %+v", res)
		}
	})
}

// TestTheTokenIsNeverShown: not when the agent cannot be reached, not
// when a server echoes it back.
func TestTheTokenIsNeverShown(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]any{"error": "unknown token " + r.Header.Get("Authorization"), "problems": []string{r.Header.Get("Authorization")}})
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL, token, client.Options{})
	_, err := c.Status(context.Background())
	var e *client.Error
	if !errors.As(err, &e) || strings.Contains(err.Error(), token) || strings.Contains(string(e.Body), token) || strings.Contains(e.Problems[0], token) {
		t.Errorf("the token is shown: %v %s %q", err, e.Body, e.Problems)
	}
	if !strings.Contains(e.Message, "[token]") {
		t.Errorf("message %q", e.Message)
	}

	// An address nothing listens on.
	c, _ = client.New("http://127.0.0.1:1", token, client.Options{Timeout: 2 * time.Second})
	_, err = c.Status(context.Background())
	if err == nil || errors.As(err, &e) || strings.Contains(err.Error(), token) {
		t.Errorf("unreachable: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, _ := client.New(srv.URL, token, client.Options{Timeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := c.Status(context.Background())
	var e *client.Error
	if err == nil || errors.As(err, &e) {
		t.Fatalf("a slow agent: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
}

func TestNewRefusesWhatItCannotUse(t *testing.T) {
	for _, server := range []string{"127.0.0.1:9808", "ftp://host", "http://", "://x"} {
		if _, err := client.New(server, token, client.Options{}); err == nil {
			t.Errorf("%q accepted", server)
		}
	}
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	for _, ca := range []string{notPEM, filepath.Join(dir, "missing.pem")} {
		if _, err := client.New("https://127.0.0.1:9808", token, client.Options{CAFile: ca}); err == nil {
			t.Errorf("CA file %s accepted", ca)
		}
	}
}

// TestTLS: an https agent is trusted with its CA file, under the name its
// certificate holds; with no CA it is refused; InsecureSkipVerify (tests
// only) takes anything.
func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"name":"oncall","role":"operate"}`)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	// httptest's certificate holds 127.0.0.1 and example.com.
	for _, tc := range []struct {
		name string
		o    client.Options
		ok   bool
	}{
		{"the system's roots", client.Options{}, false},
		{"its CA", client.Options{CAFile: ca}, true},
		{"its CA and a name it holds", client.Options{CAFile: ca, ServerName: "example.com"}, true},
		{"its CA and a name it does not hold", client.Options{CAFile: ca, ServerName: "wire.other.test"}, false},
		{"insecure", client.Options{InsecureSkipVerify: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.New(srv.URL, token, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			w, err := c.Whoami(context.Background())
			if tc.ok != (err == nil) {
				t.Fatalf("ok %v, want %v: %v", err == nil, tc.ok, err)
			}
			if tc.ok && w.Name != "oncall" {
				t.Errorf("whoami %+v", w)
			}
			if err != nil && strings.Contains(err.Error(), token) {
				t.Errorf("the token is in %v", err)
			}
		})
	}
}
