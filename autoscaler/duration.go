package autoscaler

import (
	"fmt"
	"regexp"
	"time"
)

// Duration is a time.Duration written as "30s" or "5m" in YAML. It knows
// whether it was set, so that an explicit "0s" is not taken for "unset".
type Duration struct {
	time.Duration
	set bool
}

// Dur makes a Duration that counts as set.
func Dur(d time.Duration) Duration { return Duration{Duration: d, set: true} }

// UnmarshalYAML reads a Go duration string. It has the signature yaml
// calls with a decode function, not a *yaml.Node, so that the controller
// does not import the yaml package (package config decodes the file).
func (d *Duration) UnmarshalYAML(decode func(any) error) error {
	var s string
	if err := decode(&s); err != nil {
		return fmt.Errorf("%s: want a duration such as 30s", lineOf(err))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// yaml says where a value is only in its type errors: ask for
		// one, so that the error names the line as every other does.
		var notAScalar struct{}
		return fmt.Errorf("%s: %q is not a duration (use e.g. 30s, 5m)", lineOf(decode(&notAScalar)), s)
	}
	*d = Dur(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// yamlLine is how a yaml type error begins: "line 3: cannot unmarshal …".
var yamlLine = regexp.MustCompile(`line \d+`)

// lineOf is the "line N" a yaml type error names, or "a value" if none.
func lineOf(err error) string {
	if err != nil {
		if l := yamlLine.FindString(err.Error()); l != "" {
			return l
		}
	}
	return "a value"
}
