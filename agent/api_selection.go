package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/autoscaler"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// An operator's selection: clone this node, detach that one. Each runs on
// the loop as a manual decision, under the guardrails a policy's decision
// meets except the cooldowns and growth (docs/architecture.md).

// clone asks for a clone of a selected node. The answer is the decision
// record: its operations if one started, its reasons if the guardrails
// refused (201 or 409).
func (a *Agent) clone(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	var req wire.CloneRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := a.knownNode(r.Context(), c, "template", req.Template); err != nil {
		return err
	}
	return a.manualReply(w, r, autoscaler.ManualRequest{Cluster: c, Action: plan.ActionExpand, Template: req.Template, By: p.Name})
}

// detach asks for a selected node to be detached and destroyed.
func (a *Agent) detach(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	var req wire.DetachRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := a.knownNode(r.Context(), c, "node", req.Node); err != nil {
		return err
	}
	return a.manualReply(w, r, autoscaler.ManualRequest{Cluster: c, Action: plan.ActionContract, Node: req.Node, By: p.Name})
}

// knownNode is 400 for a request's field that names no node, and 404 for
// a node the cluster does not have: a mistyped name is the operator's
// mistake, not a guardrail's refusal.
func (a *Agent) knownNode(ctx context.Context, cluster, field, id string) error {
	if id == "" {
		return bad("%s: required", field)
	}
	st, err := a.reg.State(ctx, cluster)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(st.Nodes, func(n plan.Node) bool { return n.ID == id }) {
		return notFound("node %q is not a node of cluster %s (mitosis nodes %s lists them)", id, cluster, cluster)
	}
	return nil
}

func (a *Agent) manualReply(w http.ResponseWriter, r *http.Request, req autoscaler.ManualRequest) error {
	ctx, cancel := context.WithTimeout(r.Context(), a.timing.handlerBudget())
	defer cancel()
	rec, err := a.submit(ctx, req)
	if err != nil {
		if ae := (*apiError)(nil); errors.As(a.notLeader(err), &ae) {
			return ae
		}
		if ctx.Err() != nil {
			return &apiError{code: http.StatusServiceUnavailable, msg: "the agent's loop did not take the request in time: " + err.Error()}
		}
		return &apiError{code: http.StatusConflict, msg: err.Error()}
	}
	a.log.Info("api: manual decision", "who", req.By, "cluster", req.Cluster, "action", req.Action,
		"template", req.Template, "node", req.Node, "operations", len(rec.Operations))
	code := http.StatusCreated
	if len(rec.Operations) == 0 && !rec.DryRun {
		code = http.StatusConflict // refused by a guardrail: the reasons say which
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(rec)
}

// submit hands a selection to the loop, which starts its operation at
// once, and waits for its record.
func (a *Agent) submit(ctx context.Context, req autoscaler.ManualRequest) (plan.DecisionRecord, error) {
	res := make(chan manualResult, 1) // fn may run after ctx ends: it must not block
	err := a.loop.Do(ctx, func(ctx context.Context, c *autoscaler.Controller) {
		rec, err := c.Manual(ctx, req)
		res <- manualResult{rec, err}
	})
	if err != nil {
		return plan.DecisionRecord{}, err
	}
	r := <-res
	return r.rec, r.err
}

type manualResult struct {
	rec plan.DecisionRecord
	err error
}
