package config

import (
	"fmt"
	"os"

	"github.com/mitosis-autoscaler/mitosis/autoscaler"
)

// ParseController reads the controller's keys alone (a file with no
// back-end section) strictly: an unknown key is an error naming it and its
// line; then the defaults, then validation. name labels errors.
func ParseController(data []byte, name string) (autoscaler.Config, error) {
	var c autoscaler.Config
	if err := DecodeStrict(data, &c); err != nil {
		return autoscaler.Config{}, fmt.Errorf("%s: %w", name, err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return autoscaler.Config{}, fmt.Errorf("%s: %w", name, keyLine(data, err))
	}
	return c, nil
}

// LoadController reads and parses a file of the controller's keys.
func LoadController(path string) (autoscaler.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return autoscaler.Config{}, err
	}
	return ParseController(data, path)
}
