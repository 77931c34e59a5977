package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// One method per endpoint of docs/api.md. Each answers what the endpoint
// answers, or an error: an *Error for an answer other than 2xx, another
// error when the agent could not be reached or its answer read.

// get is GET path decoded into a T. (Not "return v, c.Get(…, &v)": Go does
// not order reading v against the call.)
func get[T any](ctx context.Context, c *Client, path string) (T, error) {
	var v T
	err := c.Get(ctx, path, &v)
	return v, err
}

// do is Do decoded into a T.
func do[T any](ctx context.Context, c *Client, method, path string, body any) (T, error) {
	var v T
	err := c.Do(ctx, method, path, body, &v)
	return v, err
}

// Whoami is who the agent takes the token for: its name and role.
func (c *Client) Whoami(ctx context.Context) (wire.Whoami, error) {
	return get[wire.Whoami](ctx, c, "/v1/whoami")
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (wire.Status, error) {
	return get[wire.Status](ctx, c, "/v1/status")
}

// Nodes are a cluster's registered nodes, oldest first.
func (c *Client) Nodes(ctx context.Context, cluster string) ([]plan.Node, error) {
	return get[[]plan.Node](ctx, c, clusterPath(cluster, "nodes"))
}

// Targets are the nodes as Prometheus's HTTP service discovery reads
// them, by cluster and node id: those of cluster ("" for every cluster),
// each at port (0 for its own address's).
func (c *Client) Targets(ctx context.Context, cluster string, port int) ([]wire.TargetGroup, error) {
	q := url.Values{}
	if cluster != "" {
		q.Set("cluster", cluster)
	}
	if port != 0 {
		q.Set("port", strconv.Itoa(port))
	}
	path := "/v1/targets"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return get[[]wire.TargetGroup](ctx, c, path)
}

// Operations are a cluster's latest operations, newest first; limit <= 0
// is the agent's default (50).
func (c *Client) Operations(ctx context.Context, cluster string, limit int) ([]plan.Operation, error) {
	return get[[]plan.Operation](ctx, c, clusterPath(cluster, "operations")+limitQuery(limit))
}

// Operation is one operation by its id.
func (c *Client) Operation(ctx context.Context, id string) (plan.Operation, error) {
	return get[plan.Operation](ctx, c, "/v1/operations/"+url.PathEscape(id))
}

// Decisions are a cluster's latest decision records, newest first; limit
// <= 0 is the agent's default (20).
func (c *Client) Decisions(ctx context.Context, cluster string, limit int) ([]plan.DecisionRecord, error) {
	return get[[]plan.DecisionRecord](ctx, c, clusterPath(cluster, "decisions")+limitQuery(limit))
}

// Why is the decision in force at at (the zero time: now), the last made
// at or before it.
func (c *Client) Why(ctx context.Context, cluster string, at time.Time) (plan.DecisionRecord, error) {
	path := clusterPath(cluster, "why")
	if !at.IsZero() {
		path += "?at=" + url.QueryEscape(at.UTC().Format(time.RFC3339))
	}
	return get[plan.DecisionRecord](ctx, c, path)
}

// Clone asks for a clone of the node template. The answer is the decision
// record: its operation started (or, in a dry run, its proposal). When a
// guardrail refuses, the error is an *Error with status 409 and its
// Reasons, and the record is returned too.
func (c *Client) Clone(ctx context.Context, cluster, template string) (plan.DecisionRecord, error) {
	return c.manual(ctx, clusterPath(cluster, "clone"), wire.CloneRequest{Template: template})
}

// Detach asks for the node to be detached and destroyed; answers as Clone.
func (c *Client) Detach(ctx context.Context, cluster, node string) (plan.DecisionRecord, error) {
	return c.manual(ctx, clusterPath(cluster, "detach"), wire.DetachRequest{Node: node})
}

func (c *Client) manual(ctx context.Context, path string, body any) (plan.DecisionRecord, error) {
	var rec plan.DecisionRecord
	err := c.Do(ctx, http.MethodPost, path, body, &rec)
	if e := (*Error)(nil); errors.As(err, &e) && e.Status == http.StatusConflict {
		_ = json.Unmarshal(e.Body, &rec) // the record, when a guardrail refused
	}
	return rec, err
}

// Settings are a cluster's switches: paused, dry run (as in force), and
// who changed them last.
func (c *Client) Settings(ctx context.Context, cluster string) (wire.Settings, error) {
	return get[wire.Settings](ctx, c, clusterPath(cluster, "settings"))
}

// Pause stops a cluster's decisions (operations in flight finish).
func (c *Client) Pause(ctx context.Context, cluster string) (wire.Settings, error) {
	return do[wire.Settings](ctx, c, http.MethodPost, clusterPath(cluster, "pause"), nil)
}

// Resume lets a cluster decide again.
func (c *Client) Resume(ctx context.Context, cluster string) (wire.Settings, error) {
	return do[wire.Settings](ctx, c, http.MethodPost, clusterPath(cluster, "resume"), nil)
}

// SetDryRun switches a cluster's dry run on or off (off is refused, 409,
// when the agent itself runs dry).
func (c *Client) SetDryRun(ctx context.Context, cluster string, enabled bool) (wire.Settings, error) {
	return do[wire.Settings](ctx, c, http.MethodPut, clusterPath(cluster, "dry-run"), wire.DryRunRequest{Enabled: &enabled})
}

// Audit is the audit trail, newest first; limit <= 0 is the agent's
// default (100).
func (c *Client) Audit(ctx context.Context, limit int) ([]plan.AuditRecord, error) {
	return get[[]plan.AuditRecord](ctx, c, "/v1/audit"+limitQuery(limit))
}

// Policy is the policy the agent decides with: its version and files.
func (c *Client) Policy(ctx context.Context) (wire.PolicyFiles, error) {
	return get[wire.PolicyFiles](ctx, c, "/v1/policy")
}

// ValidatePolicy compiles files (by name, *.rego, tests included) and runs
// their tests on the agent, using nothing. A policy that fails is an
// *Error with status 422 and its Problems.
func (c *Client) ValidatePolicy(ctx context.Context, files map[string]string) (wire.PolicyCheck, error) {
	return c.policy(ctx, http.MethodPost, "/v1/policy/validate", wire.PolicyFiles{Files: files})
}

// PushPolicy validates files as ValidatePolicy does and, if they compile
// and every test passes, makes them the policy decided with from the next
// tick on. A policy with no test that passes is refused (422) unless opts
// hold NoTests.
func (c *Client) PushPolicy(ctx context.Context, files map[string]string, opts ...PushOption) (wire.PolicyCheck, error) {
	req := wire.PolicyFiles{Files: files}
	for _, o := range opts {
		o(&req)
	}
	return c.policy(ctx, http.MethodPut, "/v1/policy", req)
}

// PushOption changes what PushPolicy asks for.
type PushOption func(*wire.PolicyFiles)

// NoTests lets PushPolicy put in use a policy that has no tests (the
// agent's audit trail says it had none).
func NoTests() PushOption { return func(p *wire.PolicyFiles) { p.NoTests = true } }

func (c *Client) policy(ctx context.Context, method, path string, req wire.PolicyFiles) (wire.PolicyCheck, error) {
	var res wire.PolicyCheck
	err := c.Do(ctx, method, path, req, &res)
	if e := (*Error)(nil); errors.As(err, &e) && e.Status == http.StatusUnprocessableEntity {
		_ = json.Unmarshal(e.Body, &res)
	}
	return res, err
}

// Peers are the raft voters and the leader (404 without raft).
func (c *Client) Peers(ctx context.Context) (wire.RaftStatus, error) {
	return get[wire.RaftStatus](ctx, c, "/v1/peers")
}

// JoinPeer adds an agent as a voter; ask the leader.
func (c *Client) JoinPeer(ctx context.Context, id, address string) (wire.RaftStatus, error) {
	return do[wire.RaftStatus](ctx, c, http.MethodPost, "/v1/peers", wire.PeerRequest{ID: id, Address: address})
}

// RemovePeer removes an agent; ask the leader.
func (c *Client) RemovePeer(ctx context.Context, id string) (wire.RaftStatus, error) {
	return do[wire.RaftStatus](ctx, c, http.MethodDelete, "/v1/peers/"+url.PathEscape(id), nil)
}
