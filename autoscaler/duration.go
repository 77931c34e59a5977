package autoscaler

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// The one use of yaml in the controller: a bad duration's error names its
// line, which only the node knows (package config decodes the file).

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
