package config

import _ "embed"

//go:embed default.yaml
var defaultYAML []byte

// DefaultName is what errors in the embedded default call it.
const DefaultName = "(embedded default)"

// DefaultYAML returns the embedded default configuration's text.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default parses the embedded default configuration.
func Default() (*Config, error) { return Parse(DefaultName, defaultYAML) }
