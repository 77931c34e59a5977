package demonode

import (
	"net/url"
	"path/filepath"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/node/nodetest"
)

// demo-node passes the node API's conformance suite; its clones are made
// the way the process hypervisor makes them: a snapshot of the prepared
// template, and a node started from it.
func TestNodeAPIConformance(t *testing.T) {
	target := func(h *harness) nodetest.Target { return nodetest.Target{Addr: h.addr, Token: testToken} }
	nodetest.Run(t, nodetest.Harness{
		New: func(t *testing.T) nodetest.Target { return target(start(t, testConfig(t))) },
		NewClone: func(t *testing.T, op string) nodetest.Target {
			cfg := testConfig(t)
			tmpl := start(t, cfg)
			if r := tmpl.work(t, "k1", ""); r.code != 200 || r.cookie == "" {
				t.Fatalf("warming the template: %+v", r)
			}
			if r := tmpl.prepare(t, op, node.PrepareSuspend); !r.Accepted {
				t.Fatalf("the template refused: %q", r.Reason)
			}
			tmpl.awaitState(t, node.StatePrepared)
			file := filepath.Join(cfg.StateDir, "clone.state")
			if code, body := tmpl.post(t, "/-/snapshot?file="+url.QueryEscape(file), testToken); code != 200 {
				t.Fatalf("snapshot: %d %s", code, body)
			}
			ccfg := testConfig(t)
			ccfg.ID, ccfg.FromState = "vm-"+op, file
			clone := start(t, ccfg)
			if st := clone.status(t); st.Sessions != 1 {
				t.Fatalf("the clone did not inherit the template's session: %+v", st)
			}
			return target(clone)
		},
		Refusing: func(t *testing.T) nodetest.Target {
			cfg := testConfig(t)
			cfg.RefusePrepare = "running a batch job"
			return target(start(t, cfg))
		},
	})
}
