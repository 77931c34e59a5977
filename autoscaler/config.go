package autoscaler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mitosis-autoscaler/mitosis/node"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Duration is a time.Duration written as "30s" or "5m" in YAML. It knows
// whether it was set, so that an explicit "0s" is not taken for "unset".
type Duration struct {
	time.Duration
	set bool
}

// Dur makes a Duration that counts as set.
func Dur(d time.Duration) Duration { return Duration{Duration: d, set: true} }

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as 30s", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use e.g. 30s, 5m)", n.Line, s)
	}
	*d = Dur(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Config is the autoscaler's configuration: Default → file → Validate.
type Config struct {
	// Tick is how often the leader evaluates the policy.
	Tick Duration `yaml:"tick"`
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
	Cooldown      struct {
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
	}
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
	setDur(&c.Tick, 30*time.Second)
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		if len(cl.ScalableRoles) == 0 {
			cl.ScalableRoles = []string{"app"}
		}
		setDur(&cl.Cooldown.Up, 60*time.Second)
		setDur(&cl.Cooldown.Down, 5*time.Minute)
		setDur(&cl.Stabilization, 5*time.Minute)
		setInt(&cl.Budget.Cluster, 4)
		setInt(&cl.Budget.Template, 1)
		setInt(&cl.Budget.Host, 2)
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

func setInt(p **int, v int) {
	if *p == nil {
		*p = &v
	}
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// Validate checks the whole configuration; the error names the key.
func (c Config) Validate() error {
	if c.Tick.Duration <= 0 {
		return errors.New("tick: must be positive")
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
		if err := cl.Limits().Validate(); err != nil {
			return fmt.Errorf("%s.%w", at, err)
		}
		if cl.Prepare.Mode != node.PrepareSuspend && cl.Prepare.Mode != node.PrepareEnd {
			return fmt.Errorf("%s.prepare.mode: %q is neither %q nor %q", at, cl.Prepare.Mode, node.PrepareSuspend, node.PrepareEnd)
		}
		for j, h := range cl.Hosts {
			if h.Name == "" || h.Capacity < 0 {
				return fmt.Errorf("%s.hosts[%d]: needs a name and a capacity >= 0", at, j)
			}
		}
	}
	return nil
}

// Parse reads a YAML configuration strictly (an unknown key is an error
// naming it and its line), applies defaults and validates it. name is the
// file name used in errors.
func Parse(data []byte, name string) (Config, error) {
	var c Config
	if err := DecodeStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// LoadFile reads and parses a configuration file.
func LoadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return Parse(data, path)
}

// DecodeStrict decodes YAML into v, refusing unknown keys; the error
// names each offending key and its line. An empty document leaves v as is.
func DecodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = unknownField.ReplaceAllString(m, `line $1: unknown key "$2"`)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// clusterName is what a cluster may be called: it goes into VM names,
// operation ids and PromQL (docs/metrics.md) unescaped.
var clusterName = regexp.MustCompile(`^[a-z0-9]([-_.a-z0-9]{0,61}[a-z0-9])?$`)

var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type .*$`)
