package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"go.yaml.in/yaml/v3"
)

// Synthetic workload kinds.
const (
	Diurnal      = "diurnal"
	Spike        = "spike"
	Ramp         = "ramp"
	DiurnalSpike = "diurnal-spike"
)

// SyntheticKinds lists the synthetic workloads, for help texts.
var SyntheticKinds = []string{Diurnal, Spike, Ramp, DiurnalSpike}

// SyntheticStart is when every synthetic workload begins (a Thursday
// midnight, UTC).
var SyntheticStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// SyntheticParams shape the synthetic workloads. Every workload has one
// point per minute and multiplies each point by (1 + Noise·N(0,1)),
// drawn from the seed, floored at zero.
//
//   - diurnal: a day-long cosine between BaseRPS (at 04:00) and PeakRPS
//     (at 16:00).
//   - spike: BaseRPS with spikes at random times, SpikeEvery apart on
//     average (exponentially distributed); each rises linearly to PeakRPS
//     within SpikeRise and decays exponentially with time constant
//     SpikeDecay. Overlapping spikes add up.
//   - ramp: linear from BaseRPS to PeakRPS over the whole duration.
//   - diurnal-spike: the diurnal cosine between BaseRPS and the midpoint
//     of BaseRPS and PeakRPS, with spikes of that half amplitude on top.
type SyntheticParams struct {
	BaseRPS    float64  `yaml:"base_rps"`    // default 100
	PeakRPS    float64  `yaml:"peak_rps"`    // default 800
	Noise      *float64 `yaml:"noise"`       // default 0.05
	SpikeEvery Duration `yaml:"spike_every"` // default 3h
	SpikeRise  Duration `yaml:"spike_rise"`  // default 2m
	SpikeDecay Duration `yaml:"spike_decay"` // default 15m

	// zero: the keys a file gave as 0, which keep 0.
	zero zeroKeys
}

const (
	zeroBaseRPS zeroKeys = 1 << iota
	zeroPeakRPS
)

// UnmarshalYAML decodes the section strictly, telling a key given as 0
// (no load at the base, say) from an absent one, which takes its default.
func (p *SyntheticParams) UnmarshalYAML(n *yaml.Node) error {
	type plain SyntheticParams
	zero, err := decodeStrict(n, (*plain)(p), map[string]zeroKeys{"base_rps": zeroBaseRPS, "peak_rps": zeroPeakRPS})
	p.zero |= zero
	return err
}

// ApplyDefaults fills the unset fields. A field decoded from a file as 0
// stays 0.
func (p *SyntheticParams) ApplyDefaults() {
	p.zero.defaultFloat(&p.BaseRPS, zeroBaseRPS, 100)
	p.zero.defaultFloat(&p.PeakRPS, zeroPeakRPS, 800)
	if p.Noise == nil {
		n := 0.05
		p.Noise = &n
	}
	setDefault(&p.SpikeEvery, 3*time.Hour)
	setDefault(&p.SpikeRise, 2*time.Minute)
	setDefault(&p.SpikeDecay, 15*time.Minute)
}

// Validate names the field at fault.
func (p SyntheticParams) Validate() error {
	switch {
	case p.BaseRPS < 0 || math.IsNaN(p.BaseRPS):
		return fmt.Errorf("synthetic.base_rps: must be >= 0")
	case p.PeakRPS < p.BaseRPS || math.IsNaN(p.PeakRPS):
		return fmt.Errorf("synthetic.peak_rps: %g is below base_rps %g", p.PeakRPS, p.BaseRPS)
	case p.PeakRPS > MaxDemandRPS:
		return fmt.Errorf("synthetic.peak_rps: %g is above the most the simulator takes (%g requests per second)", p.PeakRPS, float64(MaxDemandRPS))
	case p.Noise != nil && (*p.Noise < 0 || *p.Noise > 1):
		return fmt.Errorf("synthetic.noise: must be within [0, 1]")
	case p.SpikeEvery.Duration <= 0:
		return fmt.Errorf("synthetic.spike_every: must be positive")
	case p.SpikeRise.Duration <= 0, p.SpikeDecay.Duration <= 0:
		return fmt.Errorf("synthetic.spike_rise and spike_decay: must be positive")
	}
	return nil
}

// Synthetic makes a synthetic workload of the given kind and duration,
// the same for the same seed and parameters.
func Synthetic(kind string, p SyntheticParams, d time.Duration, seed uint64) (*Workload, error) {
	p.ApplyDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	switch {
	case d < time.Minute:
		return nil, fmt.Errorf("duration %s: must be at least 1m", d)
	case d%time.Minute != 0:
		return nil, fmt.Errorf("duration %s: must be a whole number of minutes (a synthetic workload has a point a minute)", d)
	case d > defaultMaxPoints*time.Minute:
		return nil, fmt.Errorf("duration %s: must be at most %s", d, defaultMaxPoints*time.Minute)
	}
	n := int(d / time.Minute)
	rng := rand.New(rand.NewPCG(seed, seed^0x6d69746f736973))
	rate := make([]float64, n)
	amp := p.PeakRPS - p.BaseRPS
	switch kind {
	case Diurnal:
		diurnal(rate, p.BaseRPS, amp)
	case Ramp:
		for i := range rate {
			rate[i] = p.BaseRPS + amp*float64(i)/float64(max(n-1, 1))
		}
	case Spike:
		for i := range rate {
			rate[i] = p.BaseRPS
		}
		spikes(rate, amp, p, rng)
	case DiurnalSpike:
		diurnal(rate, p.BaseRPS, amp/2)
		spikes(rate, amp/2, p, rng)
	default:
		return nil, fmt.Errorf("unknown synthetic workload %q (want diurnal, spike, ramp or diurnal-spike)", kind)
	}
	w := &Workload{
		Name:   fmt.Sprintf("synthetic %s, seed %d", kind, seed),
		Start:  SyntheticStart,
		Step:   time.Minute,
		Values: rate,
	}
	for i, r := range rate {
		w.Values[i] = max(0, r*(1+*p.Noise*rng.NormFloat64())) * 60
	}
	return w, nil
}

// diurnal sets a day-long cosine from base (at 04:00) to base+amp (at
// 16:00), a point a minute.
func diurnal(rate []float64, base, amp float64) {
	for i := range rate {
		h := float64(i) / 60
		rate[i] = base + amp*(1-math.Cos(2*math.Pi*(h-4)/24))/2
	}
}

// spikes adds spikes of height amp at random times, SpikeEvery apart on
// average: each rises linearly within SpikeRise and decays exponentially
// with time constant SpikeDecay.
func spikes(rate []float64, amp float64, p SyntheticParams, rng *rand.Rand) {
	n := len(rate)
	every := p.SpikeEvery.Minutes()
	rise, decay := p.SpikeRise.Minutes(), p.SpikeDecay.Minutes()
	for t0 := rng.ExpFloat64() * every; t0 < float64(n); t0 += rng.ExpFloat64() * every {
		end := min(n, int(t0+rise+8*decay)+1)
		for i := max(0, int(t0)); i < end; i++ {
			dt := float64(i) - t0
			switch {
			case dt < 0:
			case dt < rise:
				rate[i] += amp * dt / rise
			default:
				rate[i] += amp * math.Exp(-(dt-rise)/decay)
			}
		}
	}
}
