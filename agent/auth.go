package agent

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Role is what a token may do; each role may do what the ones below it
// may. Every endpoint but health needs one (deny by default).
type Role int

// Roles, weakest first.
const (
	RoleNone    Role = iota
	RoleRead         // see everything: status, nodes, operations, decisions, policy, metrics
	RoleOperate      // and act on clusters: clone, detach, pause, resume, dry-run
	RoleAdmin        // and change the policy
)

var roleNames = map[string]Role{"read": RoleRead, "operate": RoleOperate, "admin": RoleAdmin}

func (r Role) String() string {
	for name, v := range roleNames {
		if v == r {
			return name
		}
	}
	return "none"
}

// APIConfig is the agent file's api section: who may use the HTTP API,
// and over TLS if given.
//
//	api:
//	  tls: {cert_file: /etc/mitosis/tls.crt, key_file: /etc/mitosis/tls.key}
//	  tokens:
//	    - {name: grafana, role: read, file: /etc/mitosis/tokens/grafana}
//	    - {name: oncall, role: operate, file: /etc/mitosis/tokens/oncall}
type APIConfig struct {
	TLS    *TLSFiles     `yaml:"tls"`
	Tokens []TokenConfig `yaml:"tokens"`
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
		case roleNames[t.Role] == RoleNone:
			return fmt.Errorf("api.tokens[%d].role: %q is not read, operate or admin", i, t.Role)
		case t.File == "":
			return fmt.Errorf("api.tokens[%d].file: required", i)
		}
		names[t.Name] = true
	}
	if c.TLS != nil && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		return errors.New("api.tls: cert_file and key_file are both required")
	}
	return nil
}

// principal is who a request comes from.
type principal struct {
	Name string
	Role Role
}

// tokens maps the SHA-256 of each token to its holder: a look-up by
// digest neither keeps the tokens themselves nor compares them byte by
// byte.
type tokens map[[32]byte]principal

func loadTokens(c APIConfig, extra map[string]principal) (tokens, error) {
	out := tokens{}
	add := func(tok string, p principal, from string) error {
		if tok == "" {
			return fmt.Errorf("%s: empty token", from)
		}
		d := sha256.Sum256([]byte(tok))
		if q, dup := out[d]; dup {
			return fmt.Errorf("%s: the same token as %s's", from, q.Name)
		}
		out[d] = p
		return nil
	}
	for i, t := range c.Tokens {
		b, err := os.ReadFile(t.File)
		if err != nil {
			return nil, fmt.Errorf("api.tokens[%d].file: %w", i, err)
		}
		if err := add(strings.TrimSpace(string(b)), principal{t.Name, roleNames[t.Role]}, fmt.Sprintf("api.tokens[%d].file %s", i, t.File)); err != nil {
			return nil, err
		}
	}
	for tok, p := range extra {
		if err := add(tok, p, p.Name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// who is the request's principal: RoleNone without a known bearer token.
func (ts tokens) who(r *http.Request) principal {
	// The scheme is case-insensitive (RFC 7235, 2.1): "bearer" is "Bearer".
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimLeft(tok, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return principal{}
	}
	return ts[sha256.Sum256([]byte(tok))]
}

// tlsConfig loads the API's certificate, if any.
func (c APIConfig) tlsConfig() (*tls.Config, error) {
	if c.TLS == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("api.tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
