package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// The read-only views of a cluster: the status, its nodes (also as
// Prometheus targets), its operations and its decisions.

func (a *Agent) status(w http.ResponseWriter, r *http.Request, _ principal) error {
	st := wire.Status{Version: a.opt.Version, PolicyVersion: a.policy.Version(), Simulated: a.cfg.Simulated(), DryRun: a.cfg.DryRun,
		Raft: a.raftStatus()}
	for _, cl := range a.cfg.Clusters {
		s, err := a.reg.State(r.Context(), cl.Name)
		if err != nil {
			return err
		}
		sum := wire.ClusterSummary{Name: cl.Name, Min: cl.Min, Max: cl.Max, Size: plan.Size(cl.Limits(), s.Nodes, s.Operations),
			Nodes: map[plan.NodeState]int{}, InFlight: len(s.Operations)}
		for _, n := range s.Nodes {
			sum.Nodes[n.State]++
		}
		_, set, err := a.settingsOf(r.Context(), cl.Name)
		if err != nil {
			return err
		}
		sum.Paused, sum.DryRun = set.Paused, set.DryRun
		if recs, err := a.reg.Decisions(r.Context(), cl.Name, 1); err == nil && len(recs) == 1 {
			sum.LastDecision = &recs[0]
		}
		st.Clusters = append(st.Clusters, sum)
	}
	return reply(w, st)
}

func (a *Agent) nodes(w http.ResponseWriter, r *http.Request, _ principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	s, err := a.reg.State(r.Context(), c)
	if err != nil {
		return err
	}
	nodes := s.Nodes
	if nodes == nil {
		nodes = []plan.Node{}
	}
	slices.SortFunc(nodes, func(x, y plan.Node) int { return x.CreatedAt.Compare(y.CreatedAt) })
	return reply(w, nodes)
}

// targets lists the registered nodes for Prometheus to scrape, so that a
// clone is scraped once registered and a destroyed node no longer. It
// reads the registry as nodes does, so a raft follower answers too.
func (a *Agent) targets(w http.ResponseWriter, r *http.Request, _ principal) error {
	clusters, err := a.targetClusters(r)
	if err != nil {
		return err
	}
	port, err := targetPort(r)
	if err != nil {
		return err
	}
	groups := []wire.TargetGroup{} // no targets is [], as HTTP SD asks, never null
	for _, c := range clusters {
		s, err := a.reg.State(r.Context(), c)
		if err != nil {
			return err
		}
		// plan.Ledger keeps them by id, but a Registry promises no order.
		slices.SortFunc(s.Nodes, func(x, y plan.Node) int { return strings.Compare(x.ID, y.ID) })
		for _, n := range s.Nodes {
			if n.Address != "" { // not reachable yet: nothing to scrape
				groups = append(groups, targetOf(n, port))
			}
		}
	}
	return reply(w, groups)
}

// targetClusters are the cluster ?cluster= names, or every configured
// one, by name.
func (a *Agent) targetClusters(r *http.Request) ([]string, error) {
	if q := r.URL.Query(); q.Has("cluster") {
		c, err := a.configured(q.Get("cluster"))
		if err != nil {
			return nil, err
		}
		return []string{c}, nil
	}
	names := make([]string, len(a.cfg.Clusters))
	for i, cl := range a.cfg.Clusters {
		names[i] = cl.Name
	}
	slices.Sort(names)
	return names, nil
}

// targetPort reads ?port=, 1 to 65535; 0 when absent: each node's own.
func targetPort(r *http.Request) (int, error) {
	q := r.URL.Query()
	if !q.Has("port") {
		return 0, nil
	}
	s := q.Get("port")
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, bad("port: %q is not a port number from 1 to 65535", s)
	}
	return n, nil
}

// targetOf is n's target group; a port other than 0 replaces its
// address's, for an exporter that listens beside the node API.
func targetOf(n plan.Node, port int) wire.TargetGroup {
	addr := n.Address
	if port != 0 {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr // a bare host: the port is all it lacks
		}
		addr = net.JoinHostPort(host, strconv.Itoa(port))
	}
	labels := map[string]string{"cluster": n.Cluster, "node": n.ID}
	for k, v := range map[string]string{"role": n.Role, "state": string(n.State), "host": n.Host, "vm": n.VM, "parent": n.Parent} {
		if v != "" {
			labels["__meta_mitosis_"+k] = v
		}
	}
	return wire.TargetGroup{Targets: []string{addr}, Labels: labels}
}

// operations lists the cluster's latest operations, newest first: those
// in flight and those its recent decisions started.
func (a *Agent) operations(w http.ResponseWriter, r *http.Request, _ principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	n, err := limit(r, 50)
	if err != nil {
		return err
	}
	ops, err := a.recentOperations(r.Context(), c, n)
	if err != nil {
		return err
	}
	return reply(w, ops)
}

func (a *Agent) recentOperations(ctx context.Context, cluster string, n int) ([]plan.Operation, error) {
	s, err := a.reg.State(ctx, cluster)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	ops := []plan.Operation{}
	for _, op := range s.Operations {
		seen[op.ID] = true
		ops = append(ops, op)
	}
	recs, err := a.reg.Decisions(ctx, cluster, 1000)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		for _, id := range rec.Operations {
			if seen[id] || len(ops) >= n+len(s.Operations) {
				continue
			}
			seen[id] = true
			if op, err := a.reg.Operation(ctx, id); err == nil {
				ops = append(ops, op)
			}
		}
	}
	slices.SortFunc(ops, func(x, y plan.Operation) int { return y.CreatedAt.Compare(x.CreatedAt) })
	return ops[:min(n, len(ops))], nil
}

func (a *Agent) operation(w http.ResponseWriter, r *http.Request, _ principal) error {
	op, err := a.reg.Operation(r.Context(), r.PathValue("id"))
	if errors.Is(err, plan.ErrNotFound) {
		return notFound("operation %q: not found (or forgotten: finished operations are kept for a while)", r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	return reply(w, op)
}

func (a *Agent) decisions(w http.ResponseWriter, r *http.Request, _ principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	n, err := limit(r, 20)
	if err != nil {
		return err
	}
	recs, err := a.reg.Decisions(r.Context(), c, n)
	if err != nil {
		return err
	}
	return replyBounded(w, recs, decisionsBudget)
}

// MaxDecisionsBytes bounds a decisions answer: the dashboard asks for 200
// every two seconds, and a history of large records must not make each
// answer (and the memory to build it) tens of megabytes.
const MaxDecisionsBytes = 4 << 20

// decisionsBudget is MaxDecisionsBytes; a test lowers it.
var decisionsBudget = MaxDecisionsBytes

// TruncatedHeader is set to "true" on a list answer that holds fewer
// records than asked for because they would not fit its byte budget.
const TruncatedHeader = "X-Mitosis-Truncated"

// replyBounded writes recs as reply would (a JSON array, newest first),
// but stops before the first record that would take the answer over
// budget bytes, and then says so in TruncatedHeader.
func replyBounded(w http.ResponseWriter, recs []plan.DecisionRecord, budget int) error {
	out := append(make([]byte, 0, 4096), '[')
	for i, rec := range recs {
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if len(out)+len(b)+2 > budget { // with the comma, "]" and the newline
			w.Header().Set(TruncatedHeader, "true")
			break
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, b...)
	}
	out = append(out, ']', '\n')
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(out)
	return err
}

// why answers "why did (or didn't) it scale at T?": the decision in force
// at ?at= (RFC 3339; default now), that is the last one made at or before
// it, with its reasons and what the metrics said.
func (a *Agent) why(w http.ResponseWriter, r *http.Request, _ principal) error {
	c, err := a.cluster(r)
	if err != nil {
		return err
	}
	at := a.now()
	if s := r.URL.Query().Get("at"); s != "" {
		if at, err = time.Parse(time.RFC3339, s); err != nil {
			return bad("at: %q is not an RFC 3339 time (e.g. 2026-11-27T14:02:00Z)", s)
		}
	}
	recs, err := a.reg.Decisions(r.Context(), c, 1000)
	if err != nil {
		return err
	}
	for _, rec := range recs { // newest first
		if !rec.At.After(at) {
			return reply(w, rec)
		}
	}
	return notFound("no decision of cluster %s at or before %s is kept", c, at.Format(time.RFC3339))
}
