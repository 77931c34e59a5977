package agent

import (
	"context"
	"fmt"
	"net/http"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// A cluster's switches (paused, dry run) and the audit trail of every
// write the API makes. Every write is recorded in the registry with who
// made it.

// settingsOf is a cluster's switches as the registry keeps them, and as
// the API shows them (the dry run in force).
func (a *Agent) settingsOf(ctx context.Context, cluster string) (plan.ClusterSettings, wire.Settings, error) {
	st, err := a.reg.State(ctx, cluster)
	if err != nil {
		return plan.ClusterSettings{}, wire.Settings{}, err
	}
	s := st.Settings
	dry := a.cfg.DryRun
	if !dry && s.DryRun != nil {
		dry = *s.DryRun
	}
	return s, wire.Settings{Paused: s.Paused, DryRun: dry, By: s.By, At: s.At}, nil
}

func (a *Agent) getSettings(w http.ResponseWriter, r *http.Request, _ principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	_, view, err := a.settingsOf(r.Context(), c)
	if err != nil {
		return err
	}
	return reply(w, view)
}

// change applies edit to a cluster's switches and records who did it.
func (a *Agent) change(w http.ResponseWriter, r *http.Request, p principal, action, detail string, edit func(*plan.ClusterSettings)) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	s, _, err := a.settingsOf(r.Context(), c)
	if err != nil {
		return err
	}
	now := a.now()
	edit(&s)
	s.By, s.At = p.Name, now
	if err := a.reg.PutSettings(r.Context(), c, s, plan.AuditRecord{At: now, By: p.Name, Cluster: c, Action: action, Detail: detail}); err != nil {
		return err
	}
	a.log.Info("api: "+action, "who", p.Name, "cluster", c, "detail", detail)
	_, view, err := a.settingsOf(r.Context(), c)
	if err != nil {
		return err
	}
	return reply(w, view)
}

// setPaused pauses or resumes a cluster's decisions. Operations in flight
// finish either way; an operator's clone or detach still runs.
func (a *Agent) setPaused(paused bool) func(w http.ResponseWriter, r *http.Request, p principal) error {
	action := map[bool]string{true: "pause", false: "resume"}[paused]
	return func(w http.ResponseWriter, r *http.Request, p principal) error {
		if err := noBody(r); err != nil {
			return err
		}
		return a.change(w, r, p, action, "", func(s *plan.ClusterSettings) { s.Paused = paused })
	}
}

func (a *Agent) setDryRun(w http.ResponseWriter, r *http.Request, p principal) error {
	var req wire.DryRunRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Enabled == nil {
		return bad("enabled: required (true or false)")
	}
	if a.cfg.DryRun && !*req.Enabled {
		return &apiError{code: http.StatusConflict, msg: "the agent is configured to run dry (dry_run, --dry-run, or real machines without a dispatcher): a cluster cannot be switched to act"}
	}
	on := *req.Enabled
	return a.change(w, r, p, "dry-run", fmt.Sprintf("enabled=%v", on), func(s *plan.ClusterSettings) { s.DryRun = &on })
}

func (a *Agent) audits(w http.ResponseWriter, r *http.Request, _ principal) error {
	n, err := limit(r, 100)
	if err != nil {
		return err
	}
	recs, err := a.reg.Audits(r.Context(), n)
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []plan.AuditRecord{}
	}
	return reply(w, recs)
}
