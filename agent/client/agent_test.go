package client_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/agenttest"
	"github.com/mitosis-autoscaler/mitosis/agent/client"
	"github.com/mitosis-autoscaler/mitosis/plan"
	"github.com/mitosis-autoscaler/mitosis/policies"
)

// realAgent runs an agent on a simulated world, in process, and answers
// an admin client and a read client of it.
func realAgent(t *testing.T) (admin, reader *client.Client) {
	t.Helper()
	ag := agenttest.Start(t)
	admin, err := client.New(ag.Server, ag.AdminToken, client.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reader, _ = client.New(ag.Server, ag.ReadToken, client.Options{Timeout: 10 * time.Second})
	return admin, reader
}

func status(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// TestAgainstARealAgent calls every method on an agent acting on a
// simulated world: a clone through the client is among the operations, in
// the decisions and the audit trail; the switches and the policy change.
func TestAgainstARealAgent(t *testing.T) {
	ctx := context.Background()
	admin, reader := realAgent(t)

	if w, err := reader.Whoami(ctx); err != nil || w.Name != "viewer" || w.Role != "read" {
		t.Errorf("whoami: %+v %v", w, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, err := reader.Decisions(ctx, "web", 1)
		if err == nil && len(recs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no decision in 10 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, err := reader.Status(ctx)
	if err != nil || len(st.Clusters) != 1 || st.Clusters[0].Name != "web" || st.Clusters[0].LastDecision == nil {
		t.Fatalf("status: %+v %v", st, err)
	}
	nodes, err := reader.Nodes(ctx, "web")
	if err != nil || len(nodes) < 2 {
		t.Fatalf("nodes: %v %v", nodes, err)
	}
	if _, err := reader.Nodes(ctx, "db"); status(err) != http.StatusNotFound {
		t.Errorf("nodes of no cluster: %v", err)
	}

	if _, err := reader.Clone(ctx, "web", nodes[0].ID); status(err) != http.StatusForbidden {
		t.Errorf("clone with a read token: %v", err)
	}
	rec, err := admin.Clone(ctx, "web", nodes[0].ID)
	if err != nil || len(rec.Operations) != 1 || rec.By == "" {
		t.Fatalf("clone: %+v %v", rec, err)
	}
	id := rec.Operations[0]
	ops, err := reader.Operations(ctx, "web", 0)
	if err != nil || !slices.ContainsFunc(ops, func(op plan.Operation) bool { return op.ID == id && op.Template == nodes[0].ID }) {
		t.Errorf("operations lack %s: %+v %v", id, ops, err)
	}
	if op, err := reader.Operation(ctx, id); err != nil || op.Kind != plan.OpExpand {
		t.Errorf("operation %s: %+v %v", id, op, err)
	}
	// A node that does not exist is no selection to refuse: 404, named.
	_, err = admin.Clone(ctx, "web", "no-such-node")
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusNotFound || !strings.Contains(e.Message, `"no-such-node"`) {
		t.Errorf("clone of no node: %v", err)
	}
	recs, err := reader.Decisions(ctx, "web", 5)
	if err != nil || !slices.ContainsFunc(recs, func(r plan.DecisionRecord) bool { return slices.Contains(r.Operations, id) }) {
		t.Errorf("decisions lack the clone's: %v", err)
	}
	if why, err := reader.Why(ctx, "web", time.Time{}); err != nil || why.Seq == 0 {
		t.Errorf("why now: %+v %v", why, err)
	}
	// The simulated world's time begins on 2026-01-01.
	if _, err := reader.Why(ctx, "web", time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)); status(err) != http.StatusNotFound {
		t.Errorf("why before the first decision: %v", err)
	}

	if s, err := admin.Pause(ctx, "web"); err != nil || !s.Paused || s.By == "" {
		t.Errorf("pause: %+v %v", s, err)
	}
	if s, err := admin.SetDryRun(ctx, "web", true); err != nil || !s.DryRun || !s.Paused {
		t.Errorf("dry run on: %+v %v", s, err)
	}
	if s, err := admin.Resume(ctx, "web"); err != nil || s.Paused || !s.DryRun {
		t.Errorf("resume: %+v %v", s, err)
	}
	if s, err := reader.Settings(ctx, "web"); err != nil || s.Paused || !s.DryRun {
		t.Errorf("settings: %+v %v", s, err)
	}
	if s, err := admin.SetDryRun(ctx, "web", false); err != nil || s.DryRun {
		t.Errorf("dry run off: %+v %v", s, err)
	}
	audit, err := reader.Audit(ctx, 0)
	for _, action := range []string{"clone", "pause", "resume", "dry-run"} {
		if !slices.ContainsFunc(audit, func(r plan.AuditRecord) bool { return r.Action == action }) {
			t.Errorf("audit lacks %s: %+v %v", action, audit, err)
		}
	}

	p, err := reader.Policy(ctx)
	if err != nil || p.Version == "" {
		t.Fatalf("policy: %+v %v", p, err)
	}
	files := map[string]string{}
	names, _ := fs.Glob(policies.FS, "*.rego")
	for _, n := range names {
		b, _ := fs.ReadFile(policies.FS, n)
		files[n] = string(b)
	}
	broken := map[string]string{"p.rego": "package mitosis\n\ndecision := {\n"}
	if _, err := admin.ValidatePolicy(ctx, broken); status(err) != http.StatusUnprocessableEntity || len(err.(*client.Error).Problems) == 0 {
		t.Errorf("validate a broken policy: %v", err)
	}
	if _, err := reader.PushPolicy(ctx, files); status(err) != http.StatusForbidden {
		t.Errorf("push with a read token: %v", err)
	}
	if res, err := admin.PushPolicy(ctx, files); err != nil || res.Version == "" || res.Tests.Passed == 0 || res.Tests.Failed != 0 {
		t.Errorf("push the default policy: %+v %v", res, err)
	}
	if p, err := reader.Policy(ctx); err != nil || len(p.Files) != len(files) {
		t.Errorf("policy after the push: %d files %v", len(p.Files), err)
	}
	if _, err := reader.Peers(ctx); status(err) != http.StatusNotFound {
		t.Errorf("peers without raft: %v", err)
	}
}
