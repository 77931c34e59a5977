// Package client is a typed client of the agent's HTTP API (docs/api.md),
// for the command line and for programs: one method per endpoint (api.go),
// and Do for anything else.
//
// The token is sent, never shown: it is in no error, no URL and no log
// line; an answer other than 2xx is an *Error with the status and the
// server's message, and a server that echoes the token has it redacted.
//
// The package imports only wire (the API's bodies) and plan (the records
// the API answers): a program that calls the agent carries none of its
// back-ends (OPA, raft, the hypervisors). TestTheAPIsClientCarriesNoBackEnd (floors_test.go)
// keeps it so. The agent must never import this package.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mitosis-autoscaler/mitosis/agent/wire"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Error is an answer of the server other than 2xx.
type Error struct {
	Status  int
	Message string
	// Body is the whole answer, for the callers that read more than the
	// message (the reasons of a refused clone, a policy's problems).
	Body []byte
	// Problems are a refused policy's (422), file:line:col: message.
	Problems []string
	// Reasons are the guardrails' reasons of a refused clone or detach
	// (409).
	Reasons []plan.Reason
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Options tune the client.
type Options struct {
	// CAFile verifies an https server with this CA instead of the
	// system's roots.
	CAFile string
	// ServerName is the name the server's certificate must hold, when it
	// is not the host of the server's address (an agent reached by IP).
	ServerName string
	// InsecureSkipVerify accepts any certificate. For tests only: with it,
	// anyone on the path can read the token.
	InsecureSkipVerify bool
	Timeout            time.Duration // each request; default 30 s
}

// Client calls one agent.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// New makes a client of the agent at server (http:// or https://).
func New(server, token string, o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want http://host:port or https://host:port", server)
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca file %s: no PEM certificate in it", o.CAFile)
		}
		tc.RootCAs = pool
	}
	tr.TLSClientConfig = tc
	return &Client{base: u, token: token, http: &http.Client{Timeout: o.Timeout, Transport: tr}}, nil
}

// Do sends a request with body (JSON-encoded unless nil) and decodes a 2xx
// answer into out (unless nil); any other answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is known to the caller; the token was never in it
		}
		return fmt.Errorf("%s %s: %w", method, c.base.Host, c.redact(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			wire.ErrorBody
			Problems []string      `json:"problems"` // a refused policy's (wire.PolicyRefusal)
			Reasons  []plan.Reason `json:"reasons"`  // a refused selection's (plan.DecisionRecord)
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil {
			switch {
			case e.Message != "":
				msg = e.Message
			case len(e.Reasons) > 0: // a refused clone or detach answers its decision record
				rs := make([]string, len(e.Reasons))
				for i, r := range e.Reasons {
					rs[i] = string(r.Code) + ": " + r.Message
				}
				msg = "refused: " + strings.Join(rs, "; ")
			}
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		if c.token != "" && bytes.Contains(data, []byte(c.token)) {
			data = bytes.ReplaceAll(data, []byte(c.token), []byte(redacted))
			msg = strings.ReplaceAll(msg, c.token, redacted)
			for i := range e.Problems {
				e.Problems[i] = strings.ReplaceAll(e.Problems[i], c.token, redacted)
			}
		}
		return &Error{Status: resp.StatusCode, Message: msg, Body: data, Problems: e.Problems, Reasons: e.Reasons}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// redacted stands for the token wherever it would have been shown.
const redacted = "[token]"

// redact is err with the token, should anything have put it there, hidden.
func (c *Client) redact(err error) error {
	if c.token == "" || !strings.Contains(err.Error(), c.token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), c.token, redacted))
}

// Get is Do with GET.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, path, nil, out)
}

// clusterPath is /v1/clusters/{cluster}/{rest} with the name escaped.
func clusterPath(cluster, rest string) string {
	return "/v1/clusters/" + url.PathEscape(cluster) + "/" + rest
}

// limitQuery is "?limit=n" (empty for n <= 0).
func limitQuery(n int) string {
	if n <= 0 {
		return ""
	}
	return "?limit=" + strconv.Itoa(n)
}
