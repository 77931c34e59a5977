package autoscaler

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Config is the autoscaler's configuration: Default → file → Validate.
type Config struct {
	// Tick is how often the leader evaluates the policy.
	Tick Duration `yaml:"tick"`
	// Poll is how soon the loop looks again at operations in flight that
	// wait (a template settling, a clone booting); it doubles while
	// nothing moves, up to MaxPoll (Loop).
	Poll    Duration `yaml:"poll"`
	MaxPoll Duration `yaml:"max_poll"`
	// DryRun records decisions without executing them.
	DryRun   bool            `yaml:"dry_run"`
	Clusters []ClusterConfig `yaml:"clusters"`
}

// ClusterConfig is one cluster's limits, timeouts and policy parameters.
type ClusterConfig struct {
	Name          string   `yaml:"name"`
	Min           int      `yaml:"min"`
	Max           int      `yaml:"max"`
	ScalableRoles []string `yaml:"scalable_roles"`
	// Cooldown.Up runs from the last clone's join, Cooldown.Down from the
	// last expansion or contraction decision.
	Cooldown struct {
		Up   Duration `yaml:"up"`
		Down Duration `yaml:"down"`
	} `yaml:"cooldown"`
	// Stabilization is the scale-down stabilization window.
	Stabilization Duration `yaml:"stabilization"`
	// Budget bounds the operations in flight at once; 0 is unlimited.
	Budget struct {
		Cluster  *int `yaml:"cluster"`
		Template *int `yaml:"template"`
		Host     *int `yaml:"host"`
	} `yaml:"budget"`
	// Growth is the most the cluster may grow at once: clones in flight
	// stay within (Growth-1) times its ready nodes (at least one); 2 lets
	// it double. 0 is unlimited; otherwise it must be above 1.
	Growth *float64 `yaml:"growth"`

	Hosts   []HostConfig `yaml:"hosts"`
	Prepare struct {
		Deadline Duration         `yaml:"deadline"`
		Mode     node.PrepareMode `yaml:"mode"`
		// Force goes on with the clone when the template has not settled
		// by the deadline (a policy may also ask for it per decision).
		Force bool `yaml:"force"`
	} `yaml:"prepare"`
	Finalize struct {
		Deadline Duration `yaml:"deadline"`
	} `yaml:"finalize"`
	Detach struct {
		Deadline Duration `yaml:"deadline"`
	} `yaml:"detach"`
	// PolicyParams is handed to the policy as input.params.
	PolicyParams map[string]any `yaml:"policy_params"`
}

// HostConfig is a hypervisor host clones may go to.
type HostConfig struct {
	Name string `yaml:"name"`
	// Capacity is the most VMs the host may run; 0 is unlimited.
	Capacity int `yaml:"capacity"`
}

// Limits are the cluster's guardrails for the plan core.
func (c ClusterConfig) Limits() plan.Limits {
	return plan.Limits{
		Min: c.Min, Max: c.Max, ScalableRoles: c.ScalableRoles,
		ScaleUpCooldown:        c.Cooldown.Up.Duration,
		ScaleDownCooldown:      c.Cooldown.Down.Duration,
		ScaleDownStabilization: c.Stabilization.Duration,
		MaxOpsPerCluster:       deref(c.Budget.Cluster),
		MaxOpsPerTemplate:      deref(c.Budget.Template),
		MaxOpsPerHost:          deref(c.Budget.Host),
		MaxGrowth:              deref(c.Growth),
	}
}

// Loop is the loop's timing.
func (c Config) Loop() LoopConfig {
	return LoopConfig{Tick: c.Tick.Duration, Poll: c.Poll.Duration, MaxPoll: c.MaxPoll.Duration}
}

// DefaultConfig is what mitosis runs with when given no file: one cluster
// named "app" of 1 to 10 nodes.
func DefaultConfig() Config {
	c := Config{Clusters: []ClusterConfig{{Name: "app", Min: 1, Max: 10}}}
	c.ApplyDefaults()
	return c
}

// ApplyDefaults fills every unset field with its default.
func (c *Config) ApplyDefaults() {
	setDur(&c.Tick, 15*time.Second) // Kubernetes' HPA's period
	setDur(&c.Poll, 500*time.Millisecond)
	setDur(&c.MaxPoll, 2*time.Second)
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		// Absent (nil), not an explicit [] that Validate refuses.
		if cl.ScalableRoles == nil {
			cl.ScalableRoles = []string{"app"}
		}
		// Short, since it runs from the last join: the metrics already
		// measure the new capacity.
		setDur(&cl.Cooldown.Up, 0)
		setDur(&cl.Cooldown.Down, 5*time.Minute)
		setDur(&cl.Stabilization, 12*time.Minute)
		// Growth and host capacity bound a dividing cluster, not a count
		// of operations: unlimited per cluster and per host. A template
		// is stunned for each clone, so one at a time.
		setPtr(&cl.Budget.Cluster, 0)
		setPtr(&cl.Budget.Template, 1)
		setPtr(&cl.Budget.Host, 0)
		setPtr(&cl.Growth, 2)
		setDur(&cl.Prepare.Deadline, 30*time.Second)
		if cl.Prepare.Mode == "" {
			cl.Prepare.Mode = node.PrepareSuspend
		}
		setDur(&cl.Finalize.Deadline, 5*time.Minute)
		setDur(&cl.Detach.Deadline, 5*time.Minute)
	}
}

func setDur(d *Duration, v time.Duration) {
	if !d.set {
		*d = Dur(v)
	}
}

func setPtr[T any](p **T, v T) {
	if *p == nil {
		*p = &v
	}
}

func deref[T int | float64](p *T) T {
	if p == nil {
		return 0
	}
	return *p
}

// The shortest tick and poll a file may give: below them the loop would
// spin (tick: 1ns evaluates the policy and queries Prometheus without
// pause). The agents of the chaos test tick every 100 ms.
const (
	MinTick = 100 * time.Millisecond
	MinPoll = 100 * time.Millisecond
)

// Validate checks the whole configuration; the error names the key.
func (c Config) Validate() error {
	for _, f := range []struct {
		key      string
		v, floor time.Duration
	}{{"tick", c.Tick.Duration, MinTick}, {"poll", c.Poll.Duration, MinPoll}, {"max_poll", c.MaxPoll.Duration, MinPoll}} {
		switch {
		case f.v <= 0:
			return fmt.Errorf("%s: must be positive, got %s", f.key, f.v)
		case f.v < f.floor:
			return fmt.Errorf("%s: %s is too short: at least %s", f.key, f.v, f.floor)
		}
	}
	if c.MaxPoll.Duration < c.Poll.Duration {
		return fmt.Errorf("max_poll: %s is under poll %s", c.MaxPoll.Duration, c.Poll.Duration)
	}
	if len(c.Clusters) == 0 {
		return errors.New("clusters: at least one cluster is needed")
	}
	seen := map[string]bool{}
	for i, cl := range c.Clusters {
		at := fmt.Sprintf("clusters[%d]", i)
		if cl.Name == "" {
			return fmt.Errorf("%s.name: must be set", at)
		}
		if !clusterName.MatchString(cl.Name) {
			return fmt.Errorf("%s.name: %q must be lower-case letters, digits and inner '-', '_' or '.', at most 63 (it names VMs, operations and metric labels)", at, cl.Name)
		}
		at = fmt.Sprintf("clusters[%d] (%s)", i, cl.Name)
		if seen[cl.Name] {
			return fmt.Errorf("%s.name: %q is used twice", at, cl.Name)
		}
		seen[cl.Name] = true
		for _, f := range []struct {
			key string
			v   int64
		}{
			{"cooldown.up", int64(cl.Cooldown.Up.Duration)}, {"cooldown.down", int64(cl.Cooldown.Down.Duration)},
			{"stabilization", int64(cl.Stabilization.Duration)}, {"budget.cluster", int64(deref(cl.Budget.Cluster))},
			{"budget.template", int64(deref(cl.Budget.Template))}, {"budget.host", int64(deref(cl.Budget.Host))},
		} {
			if f.v < 0 {
				return fmt.Errorf("%s.%s: must not be negative", at, f.key)
			}
		}
		// A saga given no time fails every expansion and contraction.
		for _, f := range []struct {
			key string
			v   time.Duration
		}{
			{"prepare.deadline", cl.Prepare.Deadline.Duration}, {"finalize.deadline", cl.Finalize.Deadline.Duration},
			{"detach.deadline", cl.Detach.Deadline.Duration},
		} {
			if f.v <= 0 {
				return fmt.Errorf("%s.%s: must be positive, got %s", at, f.key, f.v)
			}
		}
		if g := deref(cl.Growth); g != 0 && !(g > 1 && !math.IsInf(g, 1)) { // NaN fails g > 1
			return fmt.Errorf("%s.growth: must be 0 (unlimited) or a number above 1 (2 lets the cluster double), got %g", at, g)
		}
		if cl.ScalableRoles != nil && len(cl.ScalableRoles) == 0 {
			return fmt.Errorf("%s.scalable_roles: an empty list scales no node (leave the key out for the default [app])", at)
		}
		roles := map[string]bool{}
		for j, r := range cl.ScalableRoles {
			switch {
			case strings.TrimSpace(r) == "":
				return fmt.Errorf("%s.scalable_roles[%d]: an empty role name", at, j)
			case roles[r]:
				return fmt.Errorf("%s.scalable_roles[%d]: %q is listed twice", at, j, r)
			}
			roles[r] = true
		}
		if err := cl.Limits().Validate(); err != nil {
			return fmt.Errorf("%s.%w", at, err)
		}
		if cl.Prepare.Mode != node.PrepareSuspend && cl.Prepare.Mode != node.PrepareEnd {
			return fmt.Errorf("%s.prepare.mode: %q is neither %q nor %q", at, cl.Prepare.Mode, node.PrepareSuspend, node.PrepareEnd)
		}
		hosts := map[string]bool{}
		for j, h := range cl.Hosts {
			switch {
			case h.Name == "" || h.Capacity < 0:
				return fmt.Errorf("%s.hosts[%d]: needs a name and a capacity >= 0", at, j)
			case hosts[h.Name]:
				return fmt.Errorf("%s.hosts[%d].name: host %q is listed twice", at, j, h.Name)
			}
			hosts[h.Name] = true
		}
	}
	return nil
}

// HasHost reports whether the cluster lists host among its hosts; a
// cluster that lists none takes any.
func (c ClusterConfig) HasHost(host string) bool {
	if len(c.Hosts) == 0 {
		return true
	}
	for _, h := range c.Hosts {
		if h.Name == host {
			return true
		}
	}
	return false
}

// clusterName is what a cluster may be called: it goes into VM names,
// operation ids and PromQL (docs/metrics.md) unescaped.
var clusterName = regexp.MustCompile(`^[a-z0-9]([-_.a-z0-9]{0,61}[a-z0-9])?$`)
