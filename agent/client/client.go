// Package client is a typed client of the agent's HTTP API (docs/api.md),
// for the command line and for programs. The token is sent, never shown:
// errors carry the status and the server's message only.
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
)

// Error is an answer of the server other than 2xx.
type Error struct {
	Status  int
	Message string
	// Body is the whole answer, for the callers that read more than the
	// message (the reasons of a refused clone, a policy's problems).
	Body []byte
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Options tune the client.
type Options struct {
	// CAFile verifies an https server with this CA instead of the
	// system's roots.
	CAFile  string
	Timeout time.Duration // each request; default 30 s
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
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca file %s: no PEM certificate in it", o.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
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
		return fmt.Errorf("%s %s: %w", method, c.base.Host, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &Error{Status: resp.StatusCode, Message: msg, Body: data}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// Get is Do with GET.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, path, nil, out)
}

// ClusterPath is /v1/clusters/{cluster}/{rest} with the name escaped.
func ClusterPath(cluster, rest string) string {
	return "/v1/clusters/" + url.PathEscape(cluster) + "/" + rest
}

// Limit is "?limit=n" (empty for n <= 0).
func Limit(n int) string {
	if n <= 0 {
		return ""
	}
	return "?limit=" + strconv.Itoa(n)
}
