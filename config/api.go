package config

import (
	"errors"
	"fmt"
)

// roles are the roles a token may have (agent.Role: read < operate < admin).
var roles = map[string]bool{"read": true, "operate": true, "admin": true}

// APIConfig is the agent file's api section: who may use the HTTP API,
// and over TLS if given (required beyond loopback: CheckListen).
//
//	api:
//	  tls: {cert_file: /etc/mitosis/tls.crt, key_file: /etc/mitosis/tls.key}
//	  tokens:
//	    - {name: grafana, role: read, file: /etc/mitosis/tokens/grafana}
//	    - {name: oncall, role: operate, file: /etc/mitosis/tokens/oncall}
type APIConfig struct {
	TLS    *TLSFiles     `yaml:"tls"`
	Tokens []TokenConfig `yaml:"tokens"`
	// Insecure lets the API be served without TLS on a --listen address
	// the network reaches (CheckListen); the agent warns of it on every start.
	Insecure bool `yaml:"insecure"`
}

// TLSFiles are a certificate and its key, PEM.
type TLSFiles struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// TokenConfig is one bearer token: who holds it (for the audit records),
// its role, and the file it is read from (the file holds no other thing;
// the token is never in the configuration itself, nor in any log).
type TokenConfig struct {
	Name string `yaml:"name"`
	Role string `yaml:"role"`
	File string `yaml:"file"`
}

func (c APIConfig) validate() error {
	names := map[string]bool{}
	for i, t := range c.Tokens {
		switch {
		case t.Name == "":
			return fmt.Errorf("api.tokens[%d].name: required", i)
		case names[t.Name]:
			return fmt.Errorf("api.tokens[%d].name: %q is listed twice", i, t.Name)
		case !roles[t.Role]:
			return fmt.Errorf("api.tokens[%d].role: %q is not read, operate or admin", i, t.Role)
		case t.File == "":
			return fmt.Errorf("api.tokens[%d].file: required", i)
		}
		names[t.Name] = true
	}
	if c.TLS != nil && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		return errors.New("api.tls: cert_file and key_file are both required")
	}
	if c.TLS != nil && c.Insecure {
		return errors.New("api.insecure: true, but api.tls is given: the API is served over TLS; remove api.insecure")
	}
	return nil
}
