package agent

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
)

// TestOnePolicyCheckAtATime: while a validate or push runs, another is
// told to retry (429), so hostile policies cannot add up their memory
// budgets; once it is done, the next runs.
func TestOnePolicyCheckAtATime(t *testing.T) {
	rig := newAPIRig(t)
	b, _ := json.Marshal(wire.PolicyFiles{Files: defaultPolicyFiles(t)})
	rig.a.policy.checking.Lock() // a check under way
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/v1/policy/validate"}, {http.MethodPut, "/v1/policy"},
	} {
		code, body := rig.do(t, c.method, c.path, RoleAdmin, string(b))
		if code != http.StatusTooManyRequests || !strings.Contains(string(body), "one at a time") {
			t.Errorf("%s %s during another check: %d %s, want 429 saying one at a time", c.method, c.path, code, body)
		}
	}
	rig.a.policy.checking.Unlock()
	if code, body := rig.do(t, http.MethodPost, "/v1/policy/validate", RoleOperate, string(b)); code != http.StatusOK {
		t.Errorf("validate after the other check: %d %s", code, body)
	}
}
