package plan

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is "now" in every table case; times in a case are relative to it.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) time.Time { return t0.Add(-d) }

func appNode(id, host string) Node {
	return Node{ID: id, Cluster: "c", Role: "app", State: NodeReady, Host: host, VM: "vm-" + id}
}

// fixture is the cluster every table case starts from: a central instance
// (not scalable) and four application servers on two hosts, so the size is 4.
//
//	h1: ci, a1, a2
//	h2: a3, a4
func fixture() Input {
	ci := appNode("ci", "h1")
	ci.Role = "central"
	return Input{
		Now:     t0,
		Limits:  Limits{Min: 1, Max: 10, ScalableRoles: []string{"app"}},
		Nodes:   []Node{ci, appNode("a1", "h1"), appNode("a2", "h1"), appNode("a3", "h2"), appNode("a4", "h2")},
		Hosts:   []Host{{Name: "h1", VMs: 3}, {Name: "h2", VMs: 2}},
		Metrics: MetricsHealth{Available: true},
	}
}

func running(kind OpKind, template, host, node string) Operation {
	return Operation{ID: "op-" + string(kind) + "-" + template + node, Kind: kind, Cluster: "c", Status: OpRunning,
		Template: template, Host: host, Node: node, CreatedAt: ago(time.Minute), StepAt: ago(time.Minute)}
}

func expandOp(template, host string) Operation { return running(OpExpand, template, host, "") }
func contractOp(victim string) Operation       { return running(OpContract, "", "", victim) }

func clone(template, host string) Proposal {
	return Proposal{Kind: OpExpand, Template: template, Host: host}
}
func victim(id string) Proposal { return Proposal{Kind: OpContract, Node: id} }

func setState(in *Input, id string, s NodeState) {
	for i := range in.Nodes {
		if in.Nodes[i].ID == id {
			in.Nodes[i].State = s
			return
		}
	}
	panic("no node " + id)
}

// planCase is one behaviour of Plan: an edit of the fixture and what Plan
// must answer. The ScalingState is compared whole, so every case also says
// when LastExpand, LastContract, ContractSince and Recent change.
type planCase struct {
	name    string
	edit    func(in *Input)
	want    []Proposal
	codes   []Code
	scaling ScalingState
}

func runPlanCases(t *testing.T, cases []planCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture()
			tc.edit(&in)
			before := deepCopyInput(in)
			res := Plan(in)

			if !reflect.DeepEqual(res.Proposals, tc.want) {
				t.Errorf("proposals:\n got %+v\nwant %+v", res.Proposals, tc.want)
			}
			if got := reasonCodes(res.Reasons); !slices.Equal(got, tc.codes) {
				t.Errorf("reason codes: got %v, want %v\n%s", got, tc.codes, reasonsText(res.Reasons))
			}
			for _, r := range res.Reasons {
				if r.Message == "" {
					t.Errorf("reason %s has no message", r.Code)
				}
			}
			if !reflect.DeepEqual(res.Scaling, tc.scaling) {
				t.Errorf("scaling:\n got %+v\nwant %+v", res.Scaling, tc.scaling)
			}
			if want := naiveSize(in); res.Size != want {
				t.Errorf("size: got %d, want %d", res.Size, want)
			}
			if !reflect.DeepEqual(in, before) {
				t.Errorf("Plan changed its input")
			}
		})
	}
}

func reasonCodes(rs []Reason) []Code {
	var out []Code
	for _, r := range rs {
		out = append(out, r.Code)
	}
	return out
}

func reasonsText(rs []Reason) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("\t" + r.String() + "\n")
	}
	return b.String()
}

// contracting is the scaling state after a tick that wanted contraction:
// the run began at since, and Recent holds the sizes wanted in the window.
func contracting(since time.Time, recent ...Recommendation) ScalingState {
	return ScalingState{ContractSince: since, Recent: recent}
}

func rec(at time.Time, size int) Recommendation { return Recommendation{At: at, Size: size} }

func TestPlanExpand(t *testing.T) {
	expand := func(n int, template string) Decision {
		return Decision{Action: ActionExpand, Count: n, Template: template}
	}
	runPlanCases(t, []planCase{
		{
			name:    "expand clones the template on its own host",
			edit:    func(in *Input) { in.Decision = expand(1, "a3") },
			want:    []Proposal{clone("a3", "h2")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "a template registered without a host is cloned where the hypervisor puts it",
			edit: func(in *Input) {
				in.Nodes[1].Host = ""
				in.Decision = expand(1, "a1")
			},
			want:    []Proposal{clone("a1", "")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name:    "expand clones as many as asked",
			edit:    func(in *Input) { in.Decision = expand(3, "a1") },
			want:    []Proposal{clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "force is passed on to the proposals",
			edit: func(in *Input) {
				in.Decision = expand(1, "a1")
				in.Decision.Force = true
			},
			want:    []Proposal{{Kind: OpExpand, Template: "a1", Host: "h1", Force: true}},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name:    "count 0 does nothing",
			edit:    func(in *Input) { in.Decision = expand(0, "a1") },
			scaling: ScalingState{},
		},
		{
			name:    "a negative count does nothing",
			edit:    func(in *Input) { in.Decision = expand(-2, "a1") },
			scaling: ScalingState{},
		},
		{
			name: "expand is capped at max size",
			edit: func(in *Input) {
				in.Limits.Max = 5
				in.Decision = expand(3, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			codes:   []Code{CodeMaxSize},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "expand at max size proposes nothing and keeps the last expansion time",
			edit: func(in *Input) {
				in.Limits.Max = 4
				in.Scaling.LastExpand = ago(time.Hour)
				in.Decision = expand(2, "a1")
			},
			codes:   []Code{CodeMaxSize},
			scaling: ScalingState{LastExpand: ago(time.Hour)},
		},
		{
			name: "expand above max size proposes nothing",
			edit: func(in *Input) {
				in.Limits.Max = 2
				in.Decision = expand(1, "a1")
			},
			codes: []Code{CodeMaxSize},
		},
		{
			name: "nodes of a non-scalable role do not count towards max size",
			edit: func(in *Input) {
				in.Limits.Max = 5
				in.Decision = expand(1, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "expansions in flight count towards max size",
			edit: func(in *Input) {
				in.Limits.Max = 6
				in.Operations = []Operation{expandOp("a2", "h1")}
				in.Decision = expand(3, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			codes:   []Code{CodeMaxSize},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "contractions in flight make room below max size",
			edit: func(in *Input) {
				in.Limits.Max = 4
				in.Operations = []Operation{contractOp("a4")}
				in.Decision = expand(2, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			codes:   []Code{CodeMaxSize},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "finished operations do not count",
			edit: func(in *Input) {
				in.Limits.Max = 5
				in.Limits.MaxOpsPerCluster = 1
				done, comp, failed := expandOp("a2", "h1"), expandOp("a3", "h2"), contractOp("a4")
				done.Status, comp.Status, failed.Status = OpDone, OpCompensated, OpFailed
				in.Operations = []Operation{done, comp, failed}
				in.Decision = expand(1, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "expansion may go above min from below it",
			edit: func(in *Input) {
				in.Limits.Min, in.Limits.Max = 6, 8
				in.Decision = expand(1, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "hosts ranked by the policy are used in order",
			edit: func(in *Input) {
				in.Decision = expand(1, "a1")
				in.Decision.Hosts = []string{"h2", "h1"}
			},
			want:    []Proposal{clone("a1", "h2")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "full host is skipped",
			edit: func(in *Input) {
				in.Hosts[0].Capacity = 3 // h1 runs 3 VMs
				in.Decision = expand(1, "a1")
				in.Decision.Hosts = []string{"h1", "h2"}
			},
			want:    []Proposal{clone("a1", "h2")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "clones in flight fill a host",
			edit: func(in *Input) {
				in.Hosts[0].Capacity = 4
				in.Operations = []Operation{expandOp("a2", "h1")}
				in.Decision = expand(1, "a1")
				in.Decision.Hosts = []string{"h1", "h2"}
			},
			want:    []Proposal{clone("a1", "h2")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "clones fill a host and go on to the next",
			edit: func(in *Input) {
				in.Hosts[0].Capacity = 5
				in.Hosts[1].Capacity = 3
				in.Decision = expand(4, "a1")
				in.Decision.Hosts = []string{"h1", "h2"}
			},
			want:    []Proposal{clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h2")},
			codes:   []Code{CodeHostFull},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "the template's own host when full refuses expansion",
			edit: func(in *Input) {
				in.Hosts[1].Capacity = 2
				in.Decision = expand(1, "a3")
			},
			codes: []Code{CodeHostFull},
		},
		{
			name: "a host capacity of 0 is unlimited",
			edit: func(in *Input) {
				in.Hosts[0].Capacity = 0
				in.Hosts[0].VMs = 1000
				in.Decision = expand(1, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "per-host budget picks the next host",
			edit: func(in *Input) {
				in.Limits.MaxOpsPerHost = 1
				in.Operations = []Operation{expandOp("a2", "h1")}
				in.Decision = expand(1, "a1")
				in.Decision.Hosts = []string{"h1", "h2"}
			},
			want:    []Proposal{clone("a1", "h2")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "contractions in flight use the victim's host budget",
			edit: func(in *Input) {
				in.Limits.MaxOpsPerHost = 1
				in.Operations = []Operation{contractOp("a3")}
				in.Decision = expand(1, "a1")
				in.Decision.Hosts = []string{"h2", "h1"}
			},
			want:    []Proposal{clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "per-host budget spent on every host caps expansion",
			edit: func(in *Input) {
				in.Limits.MaxOpsPerHost = 1
				in.Decision = expand(3, "a1")
				in.Decision.Hosts = []string{"h1", "h2"}
			},
			want:    []Proposal{clone("a1", "h1"), clone("a1", "h2")},
			codes:   []Code{CodeHostBudget},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "per-template budget spills to the next ranked template",
			edit: func(in *Input) {
				in.Limits.MaxOpsPerTemplate = 1
				in.Decision = expand(2, "a1")
				in.Decision.Templates = []string{"a1", "a3"}
			},
			want:    []Proposal{clone("a1", "h1"), clone("a3", "h2")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "per-template budget counts clones in flight",
			edit: func(in *Input) {
				in.Limits.MaxOpsPerTemplate = 2
				in.Operations = []Operation{expandOp("a1", "h1")}
				in.Decision = expand(3, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			codes:   []Code{CodeTemplateBudget},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "cluster budget caps expansion",
			edit: func(in *Input) {
				in.Limits.MaxOpsPerCluster = 2
				in.Operations = []Operation{contractOp("a4")}
				in.Decision = expand(3, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			codes:   []Code{CodeClusterBudget},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "cluster budget spent refuses expansion",
			edit: func(in *Input) {
				in.Limits.MaxOpsPerCluster = 1
				in.Operations = []Operation{contractOp("a4")}
				in.Decision = expand(1, "a1")
			},
			codes: []Code{CodeClusterBudget},
		},
		{
			name:  "a template of a non-scalable role is refused",
			edit:  func(in *Input) { in.Decision = expand(1, "ci") },
			codes: []Code{CodeIneligibleTemplate},
		},
		{
			name:  "an unknown template is refused",
			edit:  func(in *Input) { in.Decision = expand(1, "ghost") },
			codes: []Code{CodeIneligibleTemplate},
		},
		{
			name:  "a decision without a template is refused",
			edit:  func(in *Input) { in.Decision = expand(1, "") },
			codes: []Code{CodeIneligibleTemplate},
		},
		{
			name: "a node held by a contraction is not a template",
			edit: func(in *Input) {
				in.Operations = []Operation{contractOp("a1")}
				in.Decision = expand(1, "a1")
			},
			codes: []Code{CodeIneligibleTemplate},
		},
		{
			name: "an ineligible template falls back to the next ranked one",
			edit: func(in *Input) {
				in.Operations = []Operation{contractOp("a1")}
				in.Decision = expand(1, "a1")
				in.Decision.Templates = []string{"ci", "a2"}
			},
			want:    []Proposal{clone("a2", "h1")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "a failed template is refused",
			edit: func(in *Input) {
				setState(in, "a1", NodeFailed)
				in.Decision = expand(1, "a1")
			},
			codes: []Code{CodeIneligibleTemplate},
		},
		{
			name: "a draining template is refused",
			edit: func(in *Input) {
				setState(in, "a1", NodeDraining)
				in.Decision = expand(1, "a1")
			},
			codes: []Code{CodeIneligibleTemplate},
		},
		{
			name: "a template preparing for another clone may be cloned again",
			edit: func(in *Input) {
				setState(in, "a1", NodePreparing)
				in.Operations = []Operation{expandOp("a1", "h1")}
				in.Decision = expand(1, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "a preparing node no clone uses is not a template",
			edit: func(in *Input) {
				setState(in, "a1", NodePreparing)
				in.Decision = expand(1, "a1")
			},
			codes: []Code{CodeIneligibleTemplate},
		},
		{
			name: "up cooldown since the last join refuses expansion",
			edit: func(in *Input) {
				in.Limits.ScaleUpCooldown = 5 * time.Minute
				in.Scaling.LastExpand = ago(time.Hour)
				in.Scaling.LastJoin = ago(2 * time.Minute)
				in.Decision = expand(1, "a1")
			},
			codes:   []Code{CodeCooldown},
			scaling: ScalingState{LastExpand: ago(time.Hour), LastJoin: ago(2 * time.Minute)},
		},
		{
			name: "expansion goes ahead once the up cooldown has passed since the last join",
			edit: func(in *Input) {
				in.Limits.ScaleUpCooldown = 5 * time.Minute
				in.Scaling.LastJoin = ago(5 * time.Minute)
				in.Decision = expand(1, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0, LastJoin: ago(5 * time.Minute)},
		},
		{
			name: "a recent expansion decision does not start the up cooldown; its clone's join will",
			edit: func(in *Input) {
				in.Limits.ScaleUpCooldown = 5 * time.Minute
				in.Scaling.LastExpand = ago(time.Second)
				in.Scaling.LastJoin = ago(time.Hour)
				in.Operations = []Operation{expandOp("a2", "h1")}
				in.Decision = expand(1, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0, LastJoin: ago(time.Hour)},
		},
		{
			name: "a recent contraction does not delay expansion",
			edit: func(in *Input) {
				in.Limits.ScaleUpCooldown = 5 * time.Minute
				in.Limits.ScaleDownCooldown = 10 * time.Minute
				in.Scaling.LastContract = ago(time.Second)
				in.Decision = expand(1, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0, LastContract: ago(time.Second)},
		},
		{
			name: "growth 2 lets four ready nodes have four clones in flight",
			edit: func(in *Input) {
				in.Limits.MaxGrowth = 2
				in.Decision = expand(6, "a1")
				in.Decision.Templates = []string{"a2", "a3", "a4"}
			},
			want:    []Proposal{clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1")},
			codes:   []Code{CodeGrowth},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "growth counts the clones already in flight",
			edit: func(in *Input) {
				in.Limits.MaxGrowth = 2
				in.Operations = []Operation{expandOp("a2", "h1"), expandOp("a3", "h2"), expandOp("a3", "h2")}
				in.Decision = expand(3, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			codes:   []Code{CodeGrowth},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "growth spent refuses expansion",
			edit: func(in *Input) {
				in.Limits.MaxGrowth = 1.5 // four ready nodes: two clones
				in.Operations = []Operation{expandOp("a2", "h1"), expandOp("a3", "h2")}
				in.Decision = expand(1, "a1")
			},
			codes: []Code{CodeGrowth},
		},
		{
			name: "growth counts only ready nodes, not failed or draining ones",
			edit: func(in *Input) {
				in.Limits.MaxGrowth = 2
				setState(in, "a3", NodeFailed)
				setState(in, "a4", NodeDraining)
				in.Decision = expand(4, "a1")
			},
			want:    []Proposal{clone("a1", "h1"), clone("a1", "h1")},
			codes:   []Code{CodeGrowth},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "growth rounds down but lets one ready node have a clone",
			edit: func(in *Input) {
				in.Limits.MaxGrowth = 1.5
				setState(in, "a2", NodeFailed)
				setState(in, "a3", NodeFailed)
				setState(in, "a4", NodeFailed)
				in.Decision = expand(2, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			codes:   []Code{CodeGrowth},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "growth 3 lets four ready nodes have eight clones in flight",
			edit: func(in *Input) {
				in.Limits.MaxGrowth = 3
				in.Limits.Max = 20
				in.Decision = expand(10, "a1")
			},
			want: []Proposal{clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1"),
				clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1")},
			codes:   []Code{CodeGrowth},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "growth 0 is unlimited",
			edit: func(in *Input) {
				in.Limits.Max = 20
				in.Decision = expand(10, "a1")
			},
			want: []Proposal{clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1"),
				clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1"), clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "metrics unavailable refuses expansion",
			edit: func(in *Input) {
				in.Metrics = MetricsHealth{Reason: "stale"}
				in.Decision = expand(1, "a1")
			},
			codes: []Code{CodeMetricsUnavailable},
		},
		{
			name: "fail-safe expansion goes ahead without metrics",
			edit: func(in *Input) {
				in.Metrics = MetricsHealth{Reason: "stale"}
				in.Decision = expand(1, "a1")
				in.Decision.FailSafe = true
			},
			want:    []Proposal{clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "fail-safe expansion still stops at max size",
			edit: func(in *Input) {
				in.Limits.Max = 4
				in.Metrics = MetricsHealth{Reason: "stale"}
				in.Decision = expand(1, "a1")
				in.Decision.FailSafe = true
			},
			codes: []Code{CodeMaxSize},
		},
		{
			name: "an expansion breaks the contraction run",
			edit: func(in *Input) {
				in.Scaling = contracting(ago(time.Minute), rec(ago(time.Minute), 3))
				in.Decision = expand(1, "a1")
			},
			want:    []Proposal{clone("a1", "h1")},
			scaling: ScalingState{LastExpand: t0},
		},
	})
}

func TestPlanContract(t *testing.T) {
	contract := func(n int, victims ...string) Decision {
		return Decision{Action: ActionContract, Count: n, Nodes: victims}
	}
	// After a contract-wanting tick at t0 with no run before it, size 4.
	wanted := func(count int) ScalingState { return contracting(t0, rec(t0, 4-count)) }
	done := func(count int) ScalingState {
		s := wanted(count)
		s.LastContract = t0
		return s
	}
	runPlanCases(t, []planCase{
		{
			name:    "contract removes the ranked victims in order",
			edit:    func(in *Input) { in.Decision = contract(2, "a3", "a1", "a2") },
			want:    []Proposal{victim("a3"), victim("a1")},
			scaling: done(2),
		},
		{
			name: "count 0 does nothing and breaks the contraction run",
			edit: func(in *Input) {
				in.Scaling = contracting(ago(time.Minute), rec(ago(time.Minute), 3))
				in.Decision = contract(0, "a1")
			},
			scaling: ScalingState{},
		},
		{
			name: "contract is capped at min size",
			edit: func(in *Input) {
				in.Limits.Min = 3
				in.Decision = contract(2, "a1", "a2")
			},
			want:    []Proposal{victim("a1")},
			codes:   []Code{CodeMinSize},
			scaling: done(2),
		},
		{
			name: "contract never removes the last node when min is 0",
			edit: func(in *Input) {
				in.Limits.Min = 0
				in.Decision = contract(9, "a1", "a2", "a3", "a4")
			},
			want:    []Proposal{victim("a1"), victim("a2"), victim("a3")},
			codes:   []Code{CodeLastNode},
			scaling: done(9),
		},
		{
			name: "contract at min size proposes nothing",
			edit: func(in *Input) {
				in.Limits.Min = 4
				in.Decision = contract(1, "a1")
			},
			codes:   []Code{CodeMinSize},
			scaling: wanted(1),
		},
		{
			name: "contract below min size proposes nothing",
			edit: func(in *Input) {
				in.Limits.Min, in.Limits.Max = 6, 8
				in.Decision = contract(1, "a1")
			},
			codes:   []Code{CodeMinSize},
			scaling: wanted(1),
		},
		{
			name: "contract may go below max from above it",
			edit: func(in *Input) {
				in.Limits.Max = 2
				in.Decision = contract(1, "a1")
			},
			want:    []Proposal{victim("a1")},
			scaling: done(1),
		},
		{
			name: "contractions in flight count towards min size",
			edit: func(in *Input) {
				in.Limits.Min = 2
				in.Operations = []Operation{contractOp("a4")}
				in.Decision = contract(2, "a1", "a2")
			},
			want:    []Proposal{victim("a1")},
			codes:   []Code{CodeMinSize},
			scaling: ScalingState{LastContract: t0, ContractSince: t0, Recent: []Recommendation{rec(t0, 1)}},
		},
		{
			name: "expansions in flight count towards min size",
			edit: func(in *Input) {
				in.Limits.Min = 4
				in.Operations = []Operation{expandOp("a1", "h1")}
				in.Decision = contract(2, "a2", "a3")
			},
			want:    []Proposal{victim("a2")},
			codes:   []Code{CodeMinSize},
			scaling: ScalingState{LastContract: t0, ContractSince: t0, Recent: []Recommendation{rec(t0, 3)}},
		},
		{
			name:    "central-instance role is never a victim",
			edit:    func(in *Input) { in.Decision = contract(1, "ci", "a2") },
			want:    []Proposal{victim("a2")},
			scaling: done(1),
		},
		{
			name:    "a victim of a non-scalable role alone is refused",
			edit:    func(in *Input) { in.Decision = contract(1, "ci") },
			codes:   []Code{CodeProtectedNode, CodeNotEnoughVictims},
			scaling: wanted(1),
		},
		{
			name: "a template in use is never a victim",
			edit: func(in *Input) {
				in.Operations = []Operation{expandOp("a1", "h1")}
				in.Decision = contract(1, "a1")
			},
			codes:   []Code{CodeProtectedNode, CodeNotEnoughVictims},
			scaling: contracting(t0, rec(t0, 4)),
		},
		{
			name: "a template whose clones finished may be a victim",
			edit: func(in *Input) {
				op := expandOp("a1", "h1")
				op.Status = OpDone
				in.Operations = []Operation{op}
				in.Decision = contract(1, "a1")
			},
			want:    []Proposal{victim("a1")},
			scaling: done(1),
		},
		{
			name: "a node held by another contraction is never a victim",
			edit: func(in *Input) {
				in.Operations = []Operation{contractOp("a1")}
				in.Decision = contract(1, "a1")
			},
			codes:   []Code{CodeProtectedNode, CodeNotEnoughVictims},
			scaling: contracting(t0, rec(t0, 2)),
		},
		{
			name:    "an unknown victim is refused",
			edit:    func(in *Input) { in.Decision = contract(1, "ghost") },
			codes:   []Code{CodeProtectedNode, CodeNotEnoughVictims},
			scaling: wanted(1),
		},
		{
			name:    "a decision without victims is refused",
			edit:    func(in *Input) { in.Decision = contract(1) },
			codes:   []Code{CodeNotEnoughVictims},
			scaling: wanted(1),
		},
		{
			name: "a draining node is never a victim",
			edit: func(in *Input) {
				setState(in, "a1", NodeDraining)
				in.Decision = contract(1, "a1")
			},
			codes:   []Code{CodeProtectedNode, CodeNotEnoughVictims},
			scaling: wanted(1),
		},
		{
			name: "a preparing node is never a victim",
			edit: func(in *Input) {
				setState(in, "a1", NodePreparing)
				in.Decision = contract(1, "a1")
			},
			codes:   []Code{CodeProtectedNode, CodeNotEnoughVictims},
			scaling: wanted(1),
		},
		{
			name: "a failed node may be a victim",
			edit: func(in *Input) {
				setState(in, "a1", NodeFailed)
				in.Decision = contract(1, "a1")
			},
			want:    []Proposal{victim("a1")},
			scaling: done(1),
		},
		{
			name:    "a victim ranked twice is contracted once",
			edit:    func(in *Input) { in.Decision = contract(2, "a1", "a1", "a2") },
			want:    []Proposal{victim("a1"), victim("a2")},
			scaling: done(2),
		},
		{
			name: "fewer eligible victims than asked contracts what it can",
			edit: func(in *Input) {
				in.Limits.Min = 0
				in.Decision = contract(2, "a1", "ci")
			},
			want:    []Proposal{victim("a1")},
			codes:   []Code{CodeProtectedNode, CodeNotEnoughVictims},
			scaling: done(2),
		},
		{
			name: "per-host budget skips victims on a busy host",
			edit: func(in *Input) {
				in.Limits.MaxOpsPerHost = 1
				in.Decision = contract(2, "a1", "a2", "a3")
			},
			want:    []Proposal{victim("a1"), victim("a3")},
			scaling: done(2),
		},
		{
			name: "per-host budget spent on every victim's host refuses contraction",
			edit: func(in *Input) {
				in.Limits.MaxOpsPerHost = 1
				in.Operations = []Operation{expandOp("a2", "h1")}
				in.Decision = contract(1, "a1")
			},
			codes:   []Code{CodeHostBudget, CodeNotEnoughVictims},
			scaling: contracting(t0, rec(t0, 4)),
		},
		{
			name: "cluster budget caps contraction",
			edit: func(in *Input) {
				in.Limits.MaxOpsPerCluster = 2
				in.Limits.Min = 0
				in.Operations = []Operation{contractOp("a4")}
				in.Decision = contract(2, "a1", "a2")
			},
			want:    []Proposal{victim("a1")},
			codes:   []Code{CodeClusterBudget},
			scaling: ScalingState{LastContract: t0, ContractSince: t0, Recent: []Recommendation{rec(t0, 1)}},
		},
		{
			name: "metrics unavailable refuses contraction and breaks the run",
			edit: func(in *Input) {
				in.Metrics = MetricsHealth{Reason: "prometheus down"}
				in.Scaling = contracting(ago(time.Minute), rec(ago(time.Minute), 3))
				in.Decision = contract(1, "a1")
			},
			codes: []Code{CodeMetricsUnavailable},
		},
		{
			name: "fail-safe does not allow contraction without metrics",
			edit: func(in *Input) {
				in.Metrics = MetricsHealth{Reason: "stale"}
				in.Decision = contract(1, "a1")
				in.Decision.FailSafe = true
			},
			codes: []Code{CodeMetricsUnavailable},
		},
		{
			name: "down cooldown refuses contraction",
			edit: func(in *Input) {
				in.Limits.ScaleDownCooldown = 5 * time.Minute
				in.Scaling.LastContract = ago(time.Minute)
				in.Decision = contract(1, "a1")
			},
			codes: []Code{CodeCooldown},
			scaling: ScalingState{LastContract: ago(time.Minute),
				ContractSince: t0, Recent: []Recommendation{rec(t0, 3)}},
		},
		{
			name: "down cooldown after an expansion refuses contraction",
			edit: func(in *Input) {
				in.Limits.ScaleDownCooldown = 5 * time.Minute
				in.Scaling.LastExpand = ago(time.Minute)
				in.Decision = contract(1, "a1")
			},
			codes: []Code{CodeCooldown},
			scaling: ScalingState{LastExpand: ago(time.Minute),
				ContractSince: t0, Recent: []Recommendation{rec(t0, 3)}},
		},
		{
			name: "contraction goes ahead once the down cooldown has passed",
			edit: func(in *Input) {
				in.Limits.ScaleDownCooldown = 5 * time.Minute
				in.Scaling.LastExpand = ago(6 * time.Minute)
				in.Scaling.LastContract = ago(5 * time.Minute)
				in.Decision = contract(1, "a1")
			},
			want: []Proposal{victim("a1")},
			scaling: ScalingState{LastExpand: ago(6 * time.Minute), LastContract: t0,
				ContractSince: t0, Recent: []Recommendation{rec(t0, 3)}},
		},
		{
			name: "the up cooldown does not delay contraction",
			edit: func(in *Input) {
				in.Limits.ScaleUpCooldown = 10 * time.Minute
				in.Limits.ScaleDownCooldown = time.Minute
				in.Scaling.LastExpand = ago(2 * time.Minute)
				in.Decision = contract(1, "a1")
			},
			want: []Proposal{victim("a1")},
			scaling: ScalingState{LastExpand: ago(2 * time.Minute), LastContract: t0,
				ContractSince: t0, Recent: []Recommendation{rec(t0, 3)}},
		},
	})
}

func TestPlanStabilization(t *testing.T) {
	const window = 5 * time.Minute
	contract := func(n int) Decision {
		return Decision{Action: ActionContract, Count: n, Nodes: []string{"a1", "a2", "a3", "a4"}}
	}
	withWindow := func(edit func(in *Input)) func(in *Input) {
		return func(in *Input) {
			in.Limits.ScaleDownStabilization = window
			in.Limits.Min = 0
			edit(in)
		}
	}
	runPlanCases(t, []planCase{
		{
			name:    "scale-down waits the stabilization window",
			edit:    withWindow(func(in *Input) { in.Decision = contract(1) }),
			codes:   []Code{CodeStabilizing},
			scaling: contracting(t0, rec(t0, 3)),
		},
		{
			name: "scale-down waits out the rest of the window",
			edit: withWindow(func(in *Input) {
				in.Scaling = contracting(ago(4*time.Minute), rec(ago(4*time.Minute), 3))
				in.Decision = contract(1)
			}),
			codes:   []Code{CodeStabilizing},
			scaling: contracting(ago(4*time.Minute), rec(ago(4*time.Minute), 3), rec(t0, 3)),
		},
		{
			name: "scale-down waits to the last second of the window",
			edit: withWindow(func(in *Input) {
				in.Scaling = contracting(ago(window-time.Second), rec(ago(window-time.Second), 3))
				in.Decision = contract(1)
			}),
			codes:   []Code{CodeStabilizing},
			scaling: contracting(ago(window-time.Second), rec(ago(window-time.Second), 3), rec(t0, 3)),
		},
		{
			name: "scale-down goes ahead after a full window",
			edit: withWindow(func(in *Input) {
				in.Scaling = contracting(ago(window), rec(ago(window), 3))
				in.Decision = contract(1)
			}),
			want: []Proposal{victim("a1")},
			scaling: ScalingState{LastContract: t0, ContractSince: ago(window),
				Recent: []Recommendation{rec(ago(window), 3), rec(t0, 3)}},
		},
		{
			name: "stabilization contracts only to the most conservative recent size",
			edit: withWindow(func(in *Input) {
				in.Scaling = contracting(ago(10*time.Minute),
					rec(ago(6*time.Minute), 1), // out of the window: forgotten
					rec(ago(4*time.Minute), 3),
					rec(ago(2*time.Minute), 2))
				in.Decision = contract(3)
			}),
			want:  []Proposal{victim("a1")},
			codes: []Code{CodeStabilizing},
			scaling: ScalingState{LastContract: t0, ContractSince: ago(10 * time.Minute),
				Recent: []Recommendation{rec(ago(4*time.Minute), 3), rec(ago(2*time.Minute), 2), rec(t0, 1)}},
		},
		{
			name: "a recent wish for the current size holds contraction back",
			edit: withWindow(func(in *Input) {
				in.Scaling = contracting(ago(10*time.Minute), rec(ago(time.Minute), 4))
				in.Decision = contract(2)
			}),
			codes:   []Code{CodeStabilizing},
			scaling: contracting(ago(10*time.Minute), rec(ago(time.Minute), 4), rec(t0, 2)),
		},
		{
			name: "a failed tick breaks the contraction run",
			edit: withWindow(func(in *Input) {
				in.Scaling = contracting(ago(10*time.Minute), rec(ago(time.Minute), 3))
				in.Scaling.LastContract = ago(time.Hour)
				in.Decision = Decision{Action: ActionNone}
			}),
			scaling: ScalingState{LastContract: ago(time.Hour)},
		},
		{
			name: "an unknown action breaks the contraction run and does nothing",
			edit: withWindow(func(in *Input) {
				in.Scaling = contracting(ago(10*time.Minute), rec(ago(time.Minute), 3))
				in.Decision = Decision{Action: "explode", Count: 3, Nodes: []string{"a1"}, Template: "a1"}
			}),
			scaling: ScalingState{},
		},
		{
			name: "a refused contraction still continues the run",
			edit: withWindow(func(in *Input) {
				in.Limits.ScaleDownCooldown = time.Hour
				in.Scaling = contracting(ago(10*time.Minute), rec(ago(time.Minute), 3))
				in.Scaling.LastContract = ago(time.Minute)
				in.Decision = contract(1)
			}),
			codes: []Code{CodeCooldown},
			scaling: ScalingState{LastContract: ago(time.Minute), ContractSince: ago(10 * time.Minute),
				Recent: []Recommendation{rec(ago(time.Minute), 3), rec(t0, 3)}},
		},
	})
}

// TestPlanStabilizationSequence drives Plan tick after tick, carrying the
// scaling state, as the controller does.
func TestPlanStabilizationSequence(t *testing.T) {
	in := fixture()
	in.Limits.Min = 0
	in.Limits.ScaleDownStabilization = 3 * time.Minute
	victims := []string{"a1", "a2", "a3", "a4"}
	ticks := []struct {
		name   string
		action Action
		count  int
		want   int // contractions proposed
	}{
		{"run begins", ActionContract, 2, 0},
		{"one minute in", ActionContract, 1, 0},
		{"a failed tick", ActionNone, 0, 0},
		{"run begins again", ActionContract, 3, 0},
		{"one minute in", ActionContract, 3, 0},
		{"two minutes in", ActionContract, 1, 0},
		{"window complete: the mildest wish in it (3) wins", ActionContract, 3, 1},
		{"the wish for 3 still holds size 3", ActionContract, 3, 0},
		{"the wish for 3 is at the window's edge", ActionContract, 3, 0},
		{"the wish for 3 left the window: down to 1", ActionContract, 3, 2},
	}
	for i, tk := range ticks {
		in.Now = t0.Add(time.Duration(i) * time.Minute)
		in.Decision = Decision{Action: tk.action, Count: tk.count, Nodes: victims}
		res := Plan(in)
		if len(res.Proposals) != tk.want {
			t.Fatalf("tick %d (%s): %d proposals, want %d; reasons:\n%s", i, tk.name, len(res.Proposals), tk.want, reasonsText(res.Reasons))
		}
		// apply: contracted nodes vanish at once
		for _, p := range res.Proposals {
			in.Nodes = slices.DeleteFunc(in.Nodes, func(n Node) bool { return n.ID == p.Node })
			victims = slices.DeleteFunc(victims, func(id string) bool { return id == p.Node })
		}
		in.Scaling = res.Scaling
	}
	if got := Size(in.Limits, in.Nodes, nil); got != 1 {
		t.Errorf("final size %d, want 1", got)
	}
}

func TestSize(t *testing.T) {
	l := Limits{Min: 0, Max: 10, ScalableRoles: []string{"app", "batch"}}
	nodes := fixture().Nodes
	batch := appNode("b1", "h2")
	batch.Role = "batch"
	failed := appNode("f1", "h2")
	failed.State = NodeFailed
	finished := expandOp("a1", "h1")
	finished.Status = OpDone
	cases := []struct {
		name  string
		nodes []Node
		ops   []Operation
		want  int
	}{
		{"an empty cluster has size 0", nil, nil, 0},
		{"only scalable roles count", nodes, nil, 4},
		{"every scalable role counts", append(slices.Clone(nodes), batch), nil, 5},
		{"a failed node still counts", append(slices.Clone(nodes), failed), nil, 5},
		{"an expansion in flight counts as a node", nodes, []Operation{expandOp("a1", "h1")}, 5},
		{"a contraction in flight counts as gone", nodes, []Operation{contractOp("a1")}, 3},
		{"a finished operation does not count", nodes, []Operation{finished}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Size(l, tc.nodes, tc.ops); got != tc.want {
				t.Errorf("Size = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestGrowthAllowance(t *testing.T) {
	for _, tc := range []struct {
		growth float64
		ready  int
		want   int
	}{
		{2, 0, 0},   // nothing ready, nothing to grow from
		{2, 1, 1},   // a cluster of one may double
		{1.5, 1, 1}, // and grow at all, though half a clone rounds down
		{1.5, 3, 1},
		{2, 4, 4},
		{3, 4, 8},
		{1.4, 5, 2},    // (1.4-1)×5 is 1.9999999999999996 in floating point
		{2.3, 10, 13},  // 12.999999999999998
		{1.7, 90, 63},  // 62.99999999999999
		{3.3, 50, 115}, // 114.99999999999999
		{1e300, 3, math.MaxInt32},
	} {
		if got := growthAllowance(tc.growth, tc.ready); got != tc.want {
			t.Errorf("growthAllowance(%g, %d) = %d, want %d", tc.growth, tc.ready, got, tc.want)
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	valid := Limits{Min: 1, Max: 5, ScalableRoles: []string{"app"}}
	cases := []struct {
		name  string
		edit  func(l *Limits)
		names string // what the error must name; "" = valid
	}{
		{"valid limits pass", func(l *Limits) {}, ""},
		{"min 0 is allowed", func(l *Limits) { l.Min = 0 }, ""},
		{"min equal to max is allowed", func(l *Limits) { l.Min = 5 }, ""},
		{"zero cooldowns, window, budgets and growth are allowed", func(l *Limits) {
			l.ScaleUpCooldown, l.ScaleDownCooldown, l.ScaleDownStabilization = 0, 0, 0
			l.MaxOpsPerCluster, l.MaxOpsPerTemplate, l.MaxOpsPerHost = 0, 0, 0
			l.MaxGrowth = 0
		}, ""},
		{"growth above 1 is allowed", func(l *Limits) { l.MaxGrowth = 1.01 }, ""},
		{"growth of 1 is refused: nothing could grow", func(l *Limits) { l.MaxGrowth = 1 }, "max_growth:"},
		{"growth below 1 is refused", func(l *Limits) { l.MaxGrowth = 0.5 }, "max_growth:"},
		{"negative growth is refused", func(l *Limits) { l.MaxGrowth = -2 }, "max_growth:"},
		{"growth NaN is refused", func(l *Limits) { l.MaxGrowth = math.NaN() }, "max_growth:"},
		{"infinite growth is refused (0 is unlimited)", func(l *Limits) { l.MaxGrowth = math.Inf(1) }, "max_growth:"},
		{"negative min is refused", func(l *Limits) { l.Min = -1 }, "min:"},
		{"max 0 is refused", func(l *Limits) { l.Max = 0; l.Min = 0 }, "max:"},
		{"min above max is refused", func(l *Limits) { l.Min = 6 }, "min:"},
		{"no scalable role is refused", func(l *Limits) { l.ScalableRoles = nil }, "scalable_roles:"},
		// The six below name only the group of fields today; see the
		// note in TestLimitsValidateNamesEveryField.
		{"negative up cooldown is refused", func(l *Limits) { l.ScaleUpCooldown = -time.Second }, "scale_up_cooldown"},
		{"negative down cooldown is refused", func(l *Limits) { l.ScaleDownCooldown = -time.Second }, "scale_down_cooldown"},
		{"negative stabilization is refused", func(l *Limits) { l.ScaleDownStabilization = -time.Second }, "scale_down_stabilization"},
		{"negative cluster budget is refused", func(l *Limits) { l.MaxOpsPerCluster = -1 }, "max_ops_per_cluster"},
		{"negative template budget is refused", func(l *Limits) { l.MaxOpsPerTemplate = -1 }, "max_ops_per_template"},
		{"negative host budget is refused", func(l *Limits) { l.MaxOpsPerHost = -1 }, "max_ops_per_host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := valid
			l.ScalableRoles = slices.Clone(valid.ScalableRoles)
			tc.edit(&l)
			err := l.Validate()
			switch {
			case tc.names == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.names != "" && err == nil:
				t.Fatalf("Validate() = nil, want an error naming %q", tc.names)
			case tc.names != "" && !strings.Contains(err.Error(), tc.names):
				t.Fatalf("Validate() = %q, want it to name %q", err, tc.names)
			}
		})
	}
}

// TestLimitsValidateNamesEveryField holds Validate to its doc comment
// ("naming the field at fault") for the fields the error names only as a
// group otherwise.
func TestLimitsValidateNamesEveryField(t *testing.T) {
	valid := Limits{Min: 1, Max: 5, ScalableRoles: []string{"app"}}
	cases := []struct {
		field string
		edit  func(l *Limits)
	}{
		{"scale_up_cooldown", func(l *Limits) { l.ScaleUpCooldown = -1 }},
		{"scale_down_cooldown", func(l *Limits) { l.ScaleDownCooldown = -1 }},
		{"scale_down_stabilization", func(l *Limits) { l.ScaleDownStabilization = -1 }},
		{"max_ops_per_cluster", func(l *Limits) { l.MaxOpsPerCluster = -1 }},
		{"max_ops_per_template", func(l *Limits) { l.MaxOpsPerTemplate = -1 }},
		{"max_ops_per_host", func(l *Limits) { l.MaxOpsPerHost = -1 }},
	}
	var vague []string
	for _, tc := range cases {
		l := valid
		tc.edit(&l)
		if err := l.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil for a negative value", tc.field)
		} else if !strings.Contains(err.Error(), tc.field) {
			vague = append(vague, tc.field+" ("+err.Error()+")")
		}
	}
	if len(vague) > 0 {
		t.Errorf("Validate does not name these fields: %s", strings.Join(vague, "; "))
	}
}

func TestTransitionApply(t *testing.T) {
	at := t0.Add(time.Minute)
	base := Operation{
		ID: "op1", Kind: OpExpand, Status: OpRunning, Step: "prepare", StepAt: t0,
		CloneVM: "vm-old", CloneAddress: "10.0.0.1", Node: "n-old", Error: "earlier failure",
		Journal: []JournalItem{{Step: "prepare", At: t0, Note: "proposed"}},
	}

	t.Run("moves the operation to the new step and journals it", func(t *testing.T) {
		got := Transition{From: "prepare", To: "clone", Status: OpRunning, At: at, Note: "settled"}.Apply(base)
		if got.Step != "clone" || got.Status != OpRunning || !got.StepAt.Equal(at) {
			t.Errorf("step/status/at = %s/%s/%s", got.Step, got.Status, got.StepAt)
		}
		want := []JournalItem{base.Journal[0], {Step: "clone", At: at, Note: "settled"}}
		if !reflect.DeepEqual(got.Journal, want) {
			t.Errorf("journal = %+v, want %+v", got.Journal, want)
		}
	})
	t.Run("empty fields keep what the operation recorded", func(t *testing.T) {
		got := Transition{To: "clone", Status: OpRunning, At: at}.Apply(base)
		if got.CloneVM != "vm-old" || got.CloneAddress != "10.0.0.1" || got.Node != "n-old" || got.Error != "earlier failure" {
			t.Errorf("lost a field: %+v", got)
		}
	})
	t.Run("set fields are recorded", func(t *testing.T) {
		got := Transition{To: "undo-clone", Status: OpRunning, At: at,
			CloneVM: "vm-new", CloneAddress: "10.0.0.2", Node: "n-new", Error: "boom"}.Apply(base)
		if got.CloneVM != "vm-new" || got.CloneAddress != "10.0.0.2" || got.Node != "n-new" || got.Error != "boom" {
			t.Errorf("field not recorded: %+v", got)
		}
	})
	t.Run("finishing sets the status", func(t *testing.T) {
		got := Transition{To: "done", Status: OpDone, At: at}.Apply(base)
		if !got.Status.Finished() {
			t.Errorf("status %s is not finished", got.Status)
		}
	})
	t.Run("journal is not aliased between copies", func(t *testing.T) {
		op := base
		op.Journal = make([]JournalItem, 1, 8) // spare capacity invites aliasing
		op.Journal[0] = base.Journal[0]
		a := Transition{To: "a", At: at}.Apply(op)
		b := Transition{To: "b", At: at}.Apply(op)
		if a.Journal[1].Step != "a" || b.Journal[1].Step != "b" {
			t.Errorf("journals share memory: a=%+v b=%+v", a.Journal, b.Journal)
		}
		if len(op.Journal) != 1 || op.Journal[:cap(op.Journal)][1].Step != "" {
			t.Errorf("the original's journal was written to: %+v", op.Journal[:cap(op.Journal)])
		}
		a.Journal[0].Note = "changed"
		if op.Journal[0].Note == "changed" || b.Journal[0].Note == "changed" {
			t.Errorf("copies share their journal's items")
		}
	})
}

func TestLearn(t *testing.T) {
	done := func(kind OpKind, took time.Duration) Operation {
		return Operation{Kind: kind, Status: OpDone, CreatedAt: t0,
			Journal: []JournalItem{{Step: "x", At: t0}, {Step: "done", At: t0.Add(took)}}}
	}
	cases := []struct {
		name string
		e    Estimates
		op   Operation
		want Estimates
	}{
		{"the first clone is taken as it is", Estimates{}, done(OpExpand, 100*time.Second), Estimates{CloneSeconds: 100}},
		{"the first drain is taken as it is", Estimates{CloneSeconds: 5}, done(OpContract, 40*time.Second), Estimates{CloneSeconds: 5, DrainSeconds: 40}},
		{"later clones are mixed in at 30%", Estimates{CloneSeconds: 100}, done(OpExpand, 200*time.Second), Estimates{CloneSeconds: 130}},
		{"an unfinished operation teaches nothing", Estimates{CloneSeconds: 100}, Operation{Kind: OpExpand, Status: OpRunning, Journal: []JournalItem{{At: t0}}}, Estimates{CloneSeconds: 100}},
		{"a compensated operation teaches nothing", Estimates{}, func() Operation { o := done(OpExpand, time.Second); o.Status = OpCompensated; return o }(), Estimates{}},
		{"an operation without journal teaches nothing", Estimates{DrainSeconds: 3}, Operation{Kind: OpContract, Status: OpDone}, Estimates{DrainSeconds: 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Learn(tc.e, tc.op); got != tc.want {
				t.Errorf("Learn = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSmallTypes(t *testing.T) {
	for _, a := range []Action{ActionNone, ActionExpand, ActionContract} {
		if !a.Valid() {
			t.Errorf("%q is not valid", a)
		}
	}
	for _, a := range []Action{"", "Expand", "scale"} {
		if a.Valid() {
			t.Errorf("%q is valid", a)
		}
	}
	for s, want := range map[OpStatus]bool{OpRunning: false, OpDone: true, OpCompensated: true, OpFailed: true, "": false} {
		if got := s.Finished(); got != want {
			t.Errorf("%q.Finished() = %v, want %v", s, got, want)
		}
	}
	if got := (Reason{CodeMaxSize, "max size 3"}).String(); got != "max_size: max size 3" {
		t.Errorf("Reason.String() = %q", got)
	}
	l := Limits{ScalableRoles: []string{"app", "batch"}}
	if !l.Scalable("batch") || l.Scalable("central") || l.Scalable("") {
		t.Errorf("Scalable is wrong for %v", l.ScalableRoles)
	}
}

// An operator's selection skips the guardrails of time and data, not
// those of size, budgets, eligibility or protection, and is no wish the
// stabilization window remembers.
func TestPlanManual(t *testing.T) {
	manual := func(in *Input, d Decision) { in.Manual, in.Decision = true, d }
	cloneOf := func(template string) Decision { return Decision{Action: ActionExpand, Count: 1, Template: template} }
	detach := func(node string) Decision { return Decision{Action: ActionContract, Count: 1, Nodes: []string{node}} }
	window := contracting(ago(time.Minute), rec(ago(time.Minute), 4))
	runPlanCases(t, []planCase{
		{
			name: "a manual clone goes through a scale-up cooldown and missing metrics",
			edit: func(in *Input) {
				in.Scaling.LastJoin = ago(time.Second)
				in.Limits.ScaleUpCooldown = time.Hour
				in.Metrics = MetricsHealth{Reason: "prometheus down"}
				manual(in, cloneOf("a3"))
			},
			want:    []Proposal{clone("a3", "h2")},
			scaling: ScalingState{LastExpand: t0, LastJoin: ago(time.Second)},
		},
		{
			name: "a manual clone goes through the growth guardrail",
			edit: func(in *Input) {
				in.Limits.MaxGrowth = 1.5
				in.Operations = []Operation{expandOp("a1", "h1"), expandOp("a2", "h1")}
				manual(in, cloneOf("a3"))
			},
			want:    []Proposal{clone("a3", "h2")},
			scaling: ScalingState{LastExpand: t0},
		},
		{
			name: "a manual clone is capped at max size",
			edit: func(in *Input) {
				in.Limits.Max = 4
				manual(in, cloneOf("a3"))
			},
			codes: []Code{CodeMaxSize},
		},
		{
			name:  "a manual clone of a node that cannot be a template is refused",
			edit:  func(in *Input) { manual(in, cloneOf("ci")) },
			codes: []Code{CodeIneligibleTemplate},
		},
		{
			name: "a manual detach goes through cooldowns and the stabilization window, which it leaves as it was",
			edit: func(in *Input) {
				in.Limits.ScaleDownCooldown, in.Limits.ScaleDownStabilization = time.Hour, time.Hour
				in.Scaling = window
				in.Scaling.LastContract = ago(time.Second)
				manual(in, detach("a2"))
			},
			want:    []Proposal{victim("a2")},
			scaling: ScalingState{ContractSince: window.ContractSince, Recent: window.Recent, LastContract: t0},
		},
		{
			name: "a manual detach never goes below min",
			edit: func(in *Input) {
				in.Limits.Min = 4
				manual(in, detach("a2"))
			},
			codes: []Code{CodeMinSize},
		},
		{
			name:  "a manual detach of a node of another role is refused",
			edit:  func(in *Input) { manual(in, detach("ci")) },
			codes: []Code{CodeProtectedNode, CodeNotEnoughVictims},
		},
	})
}
