package sim

import (
	"strings"
	"testing"
	"time"
)

const oneCluster = "clusters:\n  - name: app\n    max: 4\n"

// A key given as 0 is a mistake to name, not a request for the default.
func TestParseConfigRefusesAKeyGivenAsZero(t *testing.T) {
	cases := []struct{ section, want string }{
		{"simulation: {node_capacity: 0}", "simulation.node_capacity: must be positive"},
		{"simulation: {node_capacity: 0.0}", "simulation.node_capacity: must be positive"},
		{"simulation: {requests_per_session: 0}", "simulation.requests_per_session: must be positive"},
		{"simulation: {session_seconds: 0}", "simulation.session_seconds: must be positive"},
		{"simulation: {cold_fraction: 0}", "simulation.cold_fraction: must be within (0, 1]"},
		{"simulation: {synthetic: {peak_rps: 0}}", "simulation.synthetic.peak_rps: 0 is below base_rps 100"},
		{"simulation: {synthetic: {peak_rps: 1e300}}", "simulation.synthetic.peak_rps: 1e+300 is above the most the simulator takes"},
		{"simulation: {synthetic: {peak_rps: .inf}}", "simulation.synthetic.peak_rps: +Inf is above the most the simulator takes"},
	}
	for _, c := range cases {
		t.Run(c.section, func(t *testing.T) {
			_, err := ParseConfig([]byte(oneCluster+c.section+"\n"), "sim.yaml")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestParseConfigDefaultsAbsentKeysAndKeepsAZeroBase(t *testing.T) {
	fc, err := ParseConfig([]byte(oneCluster+"simulation: {warmup: 5m, synthetic: {base_rps: 0}}\n"), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := fc.Simulation
	if p.NodeCapacity != 100 || p.RequestsPerSession != 20 || p.SessionSeconds != 60 || p.ColdFraction != 0.3 || p.Warmup.Duration != 5*time.Minute {
		t.Errorf("defaults not applied: %+v", p)
	}
	if p.Synthetic.BaseRPS != 0 || p.Synthetic.PeakRPS != 800 {
		t.Errorf("synthetic base %g peak %g, want 0 and 800", p.Synthetic.BaseRPS, p.Synthetic.PeakRPS)
	}
	fc, err = ParseConfig([]byte(oneCluster), "sim.yaml")
	if err != nil || fc.Simulation.NodeCapacity != 100 || fc.Simulation.Synthetic.BaseRPS != 100 {
		t.Errorf("no simulation section: %v, %+v", err, fc.Simulation)
	}
}

// The section decodes itself; it must stay as strict as the rest of the file.
func TestParseConfigStillNamesUnknownKeysAndBadValues(t *testing.T) {
	cases := []struct{ section, want string }{
		{"simulation:\n  node_capacity: 50\n  warmpu: 5m\n", `line 6: unknown key "warmpu"`},
		{"simulation:\n  synthetic:\n    peak: 9\n", `line 6: unknown key "peak"`},
		{"simulation:\n  node_capacity: lots\n", "line 5: "},
		{"simulation: [1, 2]\n", "line 4: "},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			_, err := ParseConfig([]byte(oneCluster+c.section), "sim.yaml")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestSyntheticRefusesADurationNotInWholeMinutes(t *testing.T) {
	for d, want := range map[time.Duration]string{
		90 * time.Second:         "duration 1m30s: must be a whole number of minutes",
		30 * time.Second:         "duration 30s: must be at least 1m",
		100_000 * 24 * time.Hour: "duration 2400000h0m0s: must be at most",
	} {
		if _, err := Synthetic(Ramp, SyntheticParams{}, d, 1); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", d, err, want)
		}
	}
}
