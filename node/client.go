package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// Client calls nodes' APIs; it is what the controller uses (it satisfies
// autoscaler.NodeAPI). Every call is idempotent per operation, so a call
// that failed in transport or with a 5xx is retried, with exponential
// backoff and jitter, within its context. A 4xx is never retried: a 409
// is a *StateError, a 401 ErrUnauthorized. It is safe for concurrent use.
//
// Addresses are host:port; the scheme comes from ClientOptions.TLS.
type Client struct {
	token   string
	http    *http.Client
	scheme  string
	timeout time.Duration
	retries int
	backoff time.Duration
}

// ClientOptions configure a Client; zero values take the defaults.
type ClientOptions struct {
	// HTTP is the client to use (for TLS settings, say); nil: a new one.
	HTTP *http.Client
	// TLS makes calls over https.
	TLS bool
	// Timeout bounds each attempt; default 5 s.
	Timeout time.Duration
	// Retries is how many times a failed attempt is retried; default 3.
	// Negative: never.
	Retries int
	// Backoff is the wait before the first retry, doubled each time;
	// default 100 ms.
	Backoff time.Duration
}

// NewClient returns a client that authenticates with token.
func NewClient(token string, o ClientOptions) *Client {
	c := &Client{token: token, http: o.HTTP, scheme: "http", timeout: o.Timeout, retries: o.Retries, backoff: o.Backoff}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if o.TLS {
		c.scheme = "https"
	}
	if c.timeout == 0 {
		c.timeout = 5 * time.Second
	}
	switch {
	case c.retries == 0:
		c.retries = 3
	case c.retries < 0:
		c.retries = 0
	}
	if c.backoff == 0 {
		c.backoff = 100 * time.Millisecond
	}
	return c
}

// Status asks the node at addr (host:port) for its status.
func (c *Client) Status(ctx context.Context, addr string) (Status, error) {
	var st Status
	err := c.call(ctx, http.MethodGet, addr, "status", nil, &st)
	return st, err
}

// Prepare asks the node at addr to get ready to be cloned.
func (c *Client) Prepare(ctx context.Context, addr string, req PrepareRequest) (PrepareReply, error) {
	var reply PrepareReply
	err := c.call(ctx, http.MethodPost, addr, "prepare", req, &reply)
	return reply, err
}

// Resume tells the node at addr to take new work again.
func (c *Client) Resume(ctx context.Context, addr, operation string) error {
	return c.call(ctx, http.MethodPost, addr, "resume", OperationRequest{Operation: operation}, nil)
}

// Finalize gives the clone at addr its own identity.
func (c *Client) Finalize(ctx context.Context, addr string, req FinalizeRequest) error {
	return c.call(ctx, http.MethodPost, addr, "finalize", req, nil)
}

// Detach tells the node at addr to take no new work and finish its own.
func (c *Client) Detach(ctx context.Context, addr, operation string) error {
	return c.call(ctx, http.MethodPost, addr, "detach", OperationRequest{Operation: operation}, nil)
}

// Snapshot asks the node at addr to write its state, at path and query:
// an endpoint of the node's own, outside the node API (demo-node's is
// "/-/snapshot?file=F"). It is how the process hypervisor clones a VM.
// Writing the same state again is harmless, so it is retried as the
// other calls are.
func (c *Client) Snapshot(ctx context.Context, addr, path string) error {
	return c.do(ctx, http.MethodPost, addr, path, "snapshot", nil, nil)
}

// retryable is a failure another attempt may get past.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

func (c *Client) call(ctx context.Context, method, addr, name string, in, out any) error {
	return c.do(ctx, method, addr, "/v1/"+name, name, in, out)
}

// do calls path on the node at addr, retrying what another attempt may
// get past; name labels its errors.
func (c *Client) do(ctx context.Context, method, addr, path, name string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("node %s: %s: %w", addr, name, err)
		}
	}
	url := c.scheme + "://" + addr + path
	wait := c.backoff
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, method, url, body, out)
		var r retryable
		if err == nil || !errors.As(err, &r) || attempt >= c.retries || ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("node %s: %s: %w", addr, name, err)
			}
			return nil
		}
		// Full jitter: a fleet of retries does not arrive in step.
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s: %s: %w (after %v)", addr, name, ctx.Err(), err)
		case <-time.After(time.Duration(rand.Int64N(int64(wait)) + 1)):
		}
		wait *= 2
	}
}

func (c *Client) once(ctx context.Context, method, url string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return retryable{err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return retryable{err}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("unreadable answer: %w", err)
		}
		return nil
	case resp.StatusCode == http.StatusUnauthorized:
		return ErrUnauthorized
	}
	var p Problem
	_ = json.Unmarshal(data, &p)
	if p.Error == "" {
		p.Error = http.StatusText(resp.StatusCode)
	}
	switch {
	case resp.StatusCode == http.StatusConflict:
		return &StateError{Call: method + " " + req.URL.Path, State: p.State, Operation: p.Operation, Message: p.Error}
	case resp.StatusCode >= 500: // a 4xx would answer the same again
		return retryable{fmt.Errorf("%s: %s", resp.Status, p.Error)}
	}
	return fmt.Errorf("%s: %s", resp.Status, p.Error)
}
