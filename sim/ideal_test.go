package sim

import (
	"io/fs"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/policies"
)

// stepLoad is before requests a second for d, then after for d.
func stepLoad(before, after float64, d time.Duration) *Workload {
	w := flat(before, 2*d)
	for i := int(d / time.Minute); i < len(w.Values); i++ {
		w.Values[i] = after * 60
	}
	return w
}

func ideal(t *testing.T, load *Workload, mode Mode, target float64, min, max int) *Ideal {
	t.Helper()
	id, err := IdealFollower(load, DefaultParams(), mode, 1, target, min, max)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestIdealFollowerOfAConstantLoadServesAllWithTheNodesItNeeds(t *testing.T) {
	// 250 req/s at 0.6 × 100 req/s a node: ⌈4.17⌉ = 5 nodes, for 2 h.
	for _, mode := range []Mode{LiveClone, ColdBoot} {
		s := ideal(t, flat(250, 2*time.Hour), mode, 0.6, 1, 20).Summary
		want(t, string(mode)+" served %", s.ServedPct, 100)
		want(t, string(mode)+" node-hours", s.NodeHours, 5*2)
		want(t, string(mode)+" max nodes", s.MaxNodes, 5)
		if s.Expansions+s.Contractions != 0 {
			t.Errorf("%s: %d expansions, %d contractions of a constant load", mode, s.Expansions, s.Contractions)
		}
	}
}

func TestIdealFollowerLagsByOneCloneTime(t *testing.T) {
	load := flat(100, time.Hour)
	for _, c := range []struct {
		mode Mode
		lag  time.Duration
	}{
		{LiveClone, 15 * time.Second}, // prepare 2 s + clone 10 s, in 5 s steps
		{ColdBoot, 120 * time.Second},
	} {
		if got := ideal(t, load, c.mode, 0.6, 1, 10).Lag; got != c.lag {
			t.Errorf("%s: lag %s, want %s", c.mode, got, c.lag)
		}
	}
}

// A step up in demand costs the live follower requests only in the
// minute of the step, and nothing when the queue absorbs the step for one
// clone time; the cold follower waits two minutes for cold nodes.
func TestIdealFollowerOfAStepUp(t *testing.T) {
	const half = 30 * time.Minute
	stepAt := SyntheticStart.Add(half)
	p := DefaultParams()

	// 100 → 250 req/s on 2 nodes (200 req/s): 50 req/s too many for
	// 15 s is 750 requests (plus the stunned templates' share), within the
	// 2,000 their queue holds (200 req/s × 10 s).
	small := stepLoad(100, 250, half)
	live := ideal(t, small, LiveClone, 0.6, 1, 20).Summary
	if live.NotServed > 1e-6 {
		t.Errorf("live follower: %.1f requests not served of a step the queue absorbs", live.NotServed)
	}
	// 50 req/s too many for 2 minutes is 6,000: more than the queue.
	if cold := ideal(t, small, ColdBoot, 0.6, 1, 20).Summary; !(cold.NotServed > 0) {
		t.Errorf("cold follower: %.1f requests not served, want some", cold.NotServed)
	}

	big := stepLoad(100, 1000, half)
	liveBig := ideal(t, big, LiveClone, 0.6, 1, 40)
	coldBig := ideal(t, big, ColdBoot, 0.6, 1, 40)
	window := liveBig.Lag + p.MaxQueueWait.Duration + p.Step.Duration
	for _, r := range liveBig.Timeline {
		if r.Dropped > 0 && (r.Time.Before(stepAt) || !r.Time.Before(stepAt.Add(window))) {
			t.Errorf("live follower dropped %.0f requests in the minute of %s, beyond one clone time of the step at %s", r.Dropped, r.Time.Format(time.TimeOnly), stepAt.Format(time.TimeOnly))
		}
	}
	if !(liveBig.Summary.NotServed > 0) || !(coldBig.Summary.NotServed > 2*liveBig.Summary.NotServed) {
		t.Errorf("not served: live %.0f, cold %.0f; want some, and cold boots to lose far more", liveBig.Summary.NotServed, coldBig.Summary.NotServed)
	}
	// Cold nodes serve less than their count says until they have warmed.
	cold := false
	for _, r := range coldBig.Timeline {
		if r.Time.After(stepAt.Add(coldBig.Lag)) && r.Capacity < r.NodesReady*p.NodeCapacity*0.9 {
			cold = true
		}
	}
	if !cold {
		t.Error("the cold follower's new nodes served at full warmth at once")
	}
	for _, r := range liveBig.Timeline {
		if r.Time.After(stepAt.Add(time.Minute)) && r.Capacity < r.NodesReady*p.NodeCapacity*(1-1e-9) {
			t.Errorf("the live follower's nodes serve %.0f req/s at %s, less than %.1f warm nodes", r.Capacity, r.Time.Format(time.TimeOnly), r.NodesReady)
			break
		}
	}
}

// Demand that needs the max and one less in turn, every minute: the cold
// follower keeps a node it needs again within a boot rather than boot
// another, and never has more than max VMs, booting ones included.
func TestIdealFollowerNeverUsesMoreThanMax(t *testing.T) {
	load := flat(0, 2*time.Hour)
	for i := range load.Values {
		load.Values[i] = []float64{290, 350, 5000}[i%3] * 60 // 5 nodes, 6, far more than max
	}
	for _, mode := range []Mode{LiveClone, ColdBoot} {
		id := ideal(t, load, mode, 0.6, 1, 6)
		for _, r := range id.Timeline {
			if r.NodesTotal > 6+1e-9 {
				t.Fatalf("%s: %.2f nodes at %s, above the max 6", mode, r.NodesTotal, r.Time.Format(time.TimeOnly))
			}
		}
		want(t, string(mode)+" max nodes", id.Summary.MaxNodes, 6)
	}
	// No demand at all: the min, and at least one node.
	want(t, "nodes with no demand and min 0", ideal(t, flat(0, time.Hour), LiveClone, 0.6, 0, 6).Summary.MaxNodes, 1)
	want(t, "nodes with no demand and min 3", ideal(t, flat(0, time.Hour), LiveClone, 0.6, 3, 6).Summary.MeanNodes, 3)
}

func TestIdealFollowerAtAHigherTargetUsesFewerNodeHours(t *testing.T) {
	load, err := Synthetic(Diurnal, SyntheticParams{}, 24*time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []Mode{LiveClone, ColdBoot} {
		at06 := ideal(t, load, mode, 0.6, 1, 40).Summary
		at1 := ideal(t, load, mode, 1.0, 1, 40).Summary
		if !(at1.NodeHours < at06.NodeHours) {
			t.Errorf("%s: %.1f node-hours at target 1.0, %.1f at 0.6; want fewer at 1.0", mode, at1.NodeHours, at06.NodeHours)
		}
		// Compared with the same static cluster as a run.
		if at06.StaticNodes != StaticNodes(at06.PeakDemand, 100) || at06.NodeHoursPct <= 0 || at06.NodeHoursPct >= 100 {
			t.Errorf("%s: %.1f %% of %d static nodes", mode, at06.NodeHoursPct, at06.StaticNodes)
		}
	}
}

// The follower is a function of its arguments.
func TestIdealFollowerIsDeterministic(t *testing.T) {
	load, err := Synthetic(Spike, SyntheticParams{}, 6*time.Hour, 7)
	if err != nil {
		t.Fatal(err)
	}
	a, b := ideal(t, load, ColdBoot, 0.6, 2, 20), ideal(t, load, ColdBoot, 0.6, 2, 20)
	if a.Summary != b.Summary {
		t.Errorf("two summaries of the same follower differ:\n%+v\n%+v", a.Summary, b.Summary)
	}
}

func TestIdealFollowerRefusesWhatItCannotFollow(t *testing.T) {
	load := flat(100, time.Hour)
	for _, c := range []struct {
		name     string
		target   float64
		min, max int
		load     *Workload
		want     string
	}{
		{"a zero target", 0, 1, 5, load, "target 0"},
		{"min above max", 0.6, 6, 5, load, "min 6, max 5"},
		{"no node at all", 0.6, 0, 0, load, "max 0"},
		{"no workload", 0.6, 1, 5, &Workload{Step: time.Minute}, "empty"},
	} {
		_, err := IdealFollower(c.load, DefaultParams(), LiveClone, 1, c.target, c.min, c.max)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

func TestPolicyTarget(t *testing.T) {
	for _, c := range []struct {
		params map[string]any
		want   float64
	}{
		{nil, DefaultPolicyTarget},
		{map[string]any{"high": 0.9}, DefaultPolicyTarget},
		{map[string]any{"target": 0.8}, 0.8},
		{map[string]any{"target": 1}, 1}, // YAML's 1 is an int
		{map[string]any{"target": "0.8"}, DefaultPolicyTarget},
		{map[string]any{"target": -1.0}, DefaultPolicyTarget},
	} {
		if got := PolicyTarget(c.params); got != c.want {
			t.Errorf("PolicyTarget(%v) = %g, want %g", c.params, got, c.want)
		}
	}
}

// DefaultPolicyTarget is the default policy's own default.
func TestDefaultPolicyTargetIsTheDefaultPolicys(t *testing.T) {
	src, err := fs.ReadFile(policies.FS, "target_tracking.rego")
	if err != nil {
		t.Fatal(err)
	}
	if w := `"target": ` + strconv.FormatFloat(DefaultPolicyTarget, 'g', -1, 64) + ","; !strings.Contains(string(src), w) {
		t.Errorf("policies/target_tracking.rego has no %s in its defaults", w)
	}
}

// BenchmarkIdealFollowerWorldCup is the follower of the whole WorldCup98
// trace (1.5 million world steps), in each mode.
func BenchmarkIdealFollowerWorldCup(b *testing.B) {
	load := openWorldCup(b)
	fc := worldCupConfig(b)
	cl := fc.Clusters[0]
	for _, mode := range []Mode{LiveClone, ColdBoot} {
		b.Run(string(mode), func(b *testing.B) {
			for b.Loop() {
				if _, err := IdealFollower(load, fc.Simulation, mode, worldCupScale, DefaultPolicyTarget, cl.Min, cl.Max); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
