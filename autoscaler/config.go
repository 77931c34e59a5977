package autoscaler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// Validate checks the whole configuration; the error names the key.
func (c Config) Validate() error {
	if c.Tick.Duration <= 0 {
		return errors.New("tick: must be positive")
	}
	if c.Poll.Duration <= 0 {
		return errors.New("poll: must be positive")
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
// names each offending key and its line, in the file's words (a key and
// what it expects), not Go's types. An empty document leaves v as is; a
// second document is refused, since it would be ignored.
func DecodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		var next yaml.Node
		switch err := dec.Decode(&next); {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
		case !emptyDocument(&next):
			return fmt.Errorf("line %d: a second YAML document: a configuration file holds one (remove the ---, or everything after it)", next.Line)
		}
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if strings.Contains(msg, "UTF-8") {
			if line, ok := invalidUTF8Line(data); ok {
				msg = fmt.Sprintf("line %d: not UTF-8 text (%s)", line, msg)
			}
		}
		return errors.New(msg)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // it parsed: only the types were wrong
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		if sm := unmarshalError.FindStringSubmatch(m); sm != nil {
			msgs[i] = describeTypeError(&root, reflect.TypeOf(v), sm)
			continue
		}
		msgs[i] = unknownField.ReplaceAllString(m, `line $1: unknown key "$2"`)
	}
	return errors.New(strings.Join(msgs, "; "))
}

func emptyDocument(doc *yaml.Node) bool {
	for _, n := range doc.Content {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!null" || n.Value != "" {
			return false
		}
	}
	return true
}

// invalidUTF8Line is the line of the first byte that is not UTF-8.
func invalidUTF8Line(data []byte) (int, bool) {
	line := 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			return line, true
		}
		if r == '\n' {
			line++
		}
		data = data[size:]
	}
	return 0, false
}

// unmarshalError is yaml's "line 3: cannot unmarshal !!map into
// []autoscaler.ClusterConfig": line, tag, value (scalars only, maybe
// cut short with "...") and Go type.
var unmarshalError = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")

// describeTypeError rewrites yaml's type error sm as the key the value is
// under and what that key expects.
func describeTypeError(root *yaml.Node, t reflect.Type, sm []string) string {
	line, _ := strconv.Atoi(sm[1])
	tag, value, goType := sm[2], strings.TrimSuffix(sm[3], "..."), sm[4]
	given := map[string]string{"!!map": "a mapping", "!!seq": "a list"}[tag]
	if given == "" {
		given = fmt.Sprintf("%q", sm[3])
	}
	// Of the values on the line that look like the one refused, the one
	// whose Go type is the one named; several may (flow style).
	var path []string
	found := false
	for _, p := range findValues(root, nil, line, tag, value) {
		pt := typeAt(t, p)
		for pt != nil && pt.Kind() == reflect.Pointer {
			pt = pt.Elem()
		}
		if pt != nil && pt.String() == goType {
			path, found = p, true
			break
		}
	}
	if !found {
		return fmt.Sprintf("line %d: %s is not what is expected here", line, given)
	}
	if len(path) == 0 {
		return fmt.Sprintf("line %d: the file must be a mapping of keys (such as tick: and clusters:), not %s", line, given)
	}
	return fmt.Sprintf("line %d: %s: %s is expected, not %s", line, joinPath(path), expected(typeAt(t, path)), given)
}

// findValues finds, in document order, the nodes on line with tag whose
// value starts with value, each as the keys and indices that lead to it.
func findValues(n *yaml.Node, path []string, line int, tag, value string) [][]string {
	var found [][]string
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 1 {
			return findValues(n.Content[0], path, line, tag, value)
		}
		return nil
	case yaml.AliasNode:
		return nil
	}
	if n.Line == line && n.ShortTag() == tag && (n.Kind != yaml.ScalarNode || strings.HasPrefix(n.Value, value)) {
		found = append(found, path)
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			found = append(found, findValues(n.Content[i+1], append(slices.Clip(path), n.Content[i].Value), line, tag, value)...)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			found = append(found, findValues(c, append(slices.Clip(path), fmt.Sprintf("[%d]", i)), line, tag, value)...)
		}
	}
	return found
}

func joinPath(path []string) string {
	var b strings.Builder
	for i, p := range path {
		if i > 0 && !strings.HasPrefix(p, "[") {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// typeAt is the Go type the value at path decodes into, or nil.
func typeAt(t reflect.Type, path []string) reflect.Type {
	for _, p := range path {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil {
			return nil
		}
		switch t.Kind() {
		case reflect.Slice, reflect.Array:
			t = t.Elem()
		case reflect.Map:
			t = t.Elem()
		case reflect.Struct:
			t = fieldType(t, p)
		default:
			return nil
		}
	}
	return t
}

// fieldType is the type of t's field with yaml key, looking into
// inlined structs.
func fieldType(t reflect.Type, key string) reflect.Type {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			if ft := fieldType(f.Type, key); ft != nil {
				return ft
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key {
			return f.Type
		}
	}
	return nil
}

// expected says in the file's words what a value of type t looks like.
func expected(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "another kind of value"
	}
	if t == reflect.TypeFor[time.Duration]() || t == reflect.TypeFor[Duration]() {
		return "a duration such as 30s"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping (key: value)"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return "another kind of value"
}

// clusterName is what a cluster may be called: it goes into VM names,
// operation ids and PromQL (docs/metrics.md) unescaped.
var clusterName = regexp.MustCompile(`^[a-z0-9]([-_.a-z0-9]{0,61}[a-z0-9])?$`)

var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type .*$`)
