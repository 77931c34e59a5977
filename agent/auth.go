package agent

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"

	"github.com/mitosis-autoscaler/mitosis/config"
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

// principal is who a request comes from.
type principal struct {
	Name string
	Role Role
}

// tokens maps the SHA-256 of each token to its holder: a look-up by
// digest neither keeps the tokens themselves nor compares them byte by
// byte.
type tokens map[[32]byte]principal

func loadTokens(c config.APIConfig, extra map[string]principal) (tokens, error) {
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
		// Refused when others may write it or the token is short; that
		// others may read it, mitosis agent warns of at start.
		tok, _, err := config.ReadTokenFile(t.File)
		if err != nil {
			return nil, fmt.Errorf("api.tokens[%d].file: %w", i, err)
		}
		if err := add(tok, principal{t.Name, roleNames[t.Role]}, fmt.Sprintf("api.tokens[%d].file %s", i, t.File)); err != nil {
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

// apiTLS loads the API's certificate, if any.
func apiTLS(c config.APIConfig) (*tls.Config, error) {
	if c.TLS == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("api.tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
