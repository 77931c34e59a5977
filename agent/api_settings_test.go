package agent

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

func TestPauseResumeAndDryRunAreRecordedWithWhoChangedThem(t *testing.T) {
	rig := newAPIRig(t)
	var s wire.Settings
	call := func(method, path, body string, want int) {
		t.Helper()
		code, b := rig.do(t, method, path, RoleOperate, body)
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
		}
		if code == http.StatusOK {
			s = wire.Settings{}
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
		}
	}
	call(http.MethodPost, "/v1/clusters/web/pause", "", 200)
	if !s.Paused || s.DryRun || s.By != "operate-holder" || s.At.IsZero() {
		t.Errorf("after pause: %+v", s)
	}
	call(http.MethodPut, "/v1/clusters/web/dry-run", `{"enabled": true}`, 200)
	if !s.Paused || !s.DryRun {
		t.Errorf("after dry-run on: %+v (still paused, now dry)", s)
	}
	call(http.MethodPost, "/v1/clusters/web/resume", "", 200)
	call(http.MethodPut, "/v1/clusters/web/dry-run", `{"enabled": false}`, 200)
	if s.Paused || s.DryRun {
		t.Errorf("after resume and dry-run off: %+v", s)
	}
	call(http.MethodPut, "/v1/clusters/web/dry-run", `{}`, 400)
	call(http.MethodPut, "/v1/clusters/web/dry-run", `{"enabled": "yes"}`, 400)
	call(http.MethodPost, "/v1/clusters/db/pause", "", 404)

	code, b := rig.do(t, http.MethodGet, "/v1/audit", RoleRead, "")
	var audits []plan.AuditRecord
	if code != 200 || json.Unmarshal(b, &audits) != nil {
		t.Fatalf("audit: %d %s", code, b)
	}
	var got []string
	for _, a := range audits {
		got = append(got, a.By+" "+a.Action+" "+a.Detail)
	}
	want := []string{"operate-holder dry-run enabled=false", "operate-holder resume ", "operate-holder dry-run enabled=true", "operate-holder pause "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit trail %q, want %q", got, want)
	}

	// A dry-run agent cannot be switched to act.
	rig.a.cfg.DryRun = true
	call(http.MethodPut, "/v1/clusters/web/dry-run", `{"enabled": false}`, 409)
}
