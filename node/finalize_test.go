package node_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/node"
)

// A finalize again under the same operation is a retry only when it asks
// for the same identity: another id or address answers 409 and the node
// keeps the identity it took, after a restart from its saved state too.
func TestFinalizeAgainWithAnotherIdentityIsAConflict(t *testing.T) {
	a := &app{}
	s, err := node.NewServer(a, node.ServerOptions{ID: "web-1", Token: token, Cloned: true})
	if err != nil {
		t.Fatal(err)
	}
	const first = `{"operation":"op-1","id":"web-c1","address":"127.0.0.1:8082"}`
	if code, body := post(t, s, "/v1/finalize", first); code != http.StatusOK {
		t.Fatalf("finalize: %d %s", code, body)
	}
	if code, body := post(t, s, "/v1/finalize", first); code != http.StatusOK || len(a.calls) != 1 {
		t.Errorf("the same finalize again: %d %s, app asked %v; want 200 and one call", code, body, a.calls)
	}
	conflicts := func(s *node.Server, name string) {
		t.Helper()
		for _, body := range []string{
			`{"operation":"op-1","id":"web-c2","address":"127.0.0.1:8082"}`,
			`{"operation":"op-1","id":"web-c1","address":"127.0.0.1:9999"}`,
		} {
			code, got := post(t, s, "/v1/finalize", body)
			var p node.Problem
			if code != http.StatusConflict || json.Unmarshal(got, &p) != nil || p.State != node.StateReady ||
				!strings.Contains(p.Error, "finalize: operation op-1 finalized this node as web-c1 at 127.0.0.1:8082") {
				t.Errorf("%s: %s: %d %s; want 409 naming the identity taken", name, body, code, got)
			}
		}
		if st := s.Status(); st.ID != "web-c1" || st.State != node.StateReady {
			t.Errorf("%s: after the conflicts: %+v", name, st)
		}
	}
	conflicts(s, "running")
	var snap node.Snapshot
	if err := s.Save(func(sn node.Snapshot) error { snap = sn; return nil }); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(snap) // as an application saves it
	var restored node.Snapshot
	if err := json.Unmarshal(b, &restored); err != nil {
		t.Fatal(err)
	}
	s2, err := node.NewServer(&app{}, node.ServerOptions{Token: token, Restore: &restored})
	if err != nil {
		t.Fatal(err)
	}
	conflicts(s2, "restored")
}
