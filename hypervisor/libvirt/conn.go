package libvirt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lv "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

// Every call honours its context, though go-libvirt's calls take none:
// while a call runs, a watchdog (context.AfterFunc) closes the connection
// if the call's context ends first. That unblocks whatever the call waits
// for (a daemon that is stopped, or a socket that accepts and never
// answers), the call fails with an error wrapping the context's, and the
// next call dials again. The connection is shared, so calls in flight on
// it then fail too, with an error wrapping the context error of the call
// that dropped it: a hung daemon would have held them anyway. Dialling is bounded by the dialling call's context, and
// a call waiting for another's dial gives up at its own deadline.

// session is one connection to the daemon: go-libvirt's client and the
// net.Conn it runs on.
type session struct {
	l       *lv.Libvirt
	nc      net.Conn
	dropped atomic.Bool
	// why is why it was dropped (set before dropped).
	why atomic.Pointer[error]
}

// drop closes the connection under the client, for the reason why;
// go-libvirt's calls waiting on it return.
func (s *session) drop(why error) {
	s.why.CompareAndSwap(nil, &why)
	if s.dropped.CompareAndSwap(false, true) {
		_ = s.nc.Close()
	}
}

// dropCause is why the session was dropped, nil if it was not.
func (s *session) dropCause() error {
	if !s.dropped.Load() {
		return nil
	}
	if p := s.why.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *session) alive() bool { return !s.dropped.Load() && s.l.IsConnected() }

// conn returns the connection, dialling again if there is none (the
// daemon dropped it, or a call's deadline did: a restarted libvirtd keeps
// its domains; the client just reconnects), and done, which the caller
// must call with its error once it no longer uses the connection: done
// returns the error to report, wrapping ctx's if ctx ended while the call
// ran (the connection is then dropped).
func (c *Client) conn(ctx context.Context) (_ *lv.Libvirt, done func(error) error, _ error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.drop(ctx.Err()) })
	return s.l, func(err error) error {
		if err == nil {
			stop()
			return nil
		}
		if !stop() {
			return fmt.Errorf("libvirt did not answer in time, so its connection is dropped: %w (%v)", ctx.Err(), err)
		}
		if why := s.dropCause(); why != nil {
			return fmt.Errorf("libvirt connection dropped under the call, as another call on it got no answer in time: %w (%v)", why, err)
		}
		return err
	}, nil
}

// session returns the live session, or dials one.
func (c *Client) session(ctx context.Context) (*session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s := c.current(); s != nil {
		return s, nil
	}
	// One dial at a time; a caller waiting for another's gives up with its
	// own context.
	select {
	case c.dialing <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("libvirt: waiting for the connection: %w", ctx.Err())
	}
	defer func() { <-c.dialing }()
	if s := c.current(); s != nil {
		return s, nil
	}
	c.smu.Lock()
	lost := c.s != nil
	c.smu.Unlock()
	if lost {
		c.log.Info("libvirt connection lost; connecting again")
	}
	s, err := dial(ctx, c.uri)
	if err != nil {
		return nil, fmt.Errorf("libvirt: connecting to %s: %w", c.uri.Redacted(), err)
	}
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.closed {
		s.drop(errClosed)
		return nil, errClosed
	}
	c.s = s
	return s, nil
}

var errClosed = errors.New("libvirt: the client is closed")

// current is the session if it is alive.
func (c *Client) current() *session {
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.s != nil && c.s.alive() {
		return c.s
	}
	return nil
}

// dial connects to the daemon of u (as Config.connectURI returns it) and
// opens its driver, within ctx.
func dial(ctx context.Context, u *url.URL) (*session, error) {
	d := &ctxDialer{ctx: ctx, uri: u}
	l := lv.NewWithDialer(d)
	err := l.ConnectToURI(lv.RemoteURI(u))
	d.mu.Lock()
	nc, stop := d.nc, d.stop
	d.mu.Unlock()
	if stop != nil && !stop() {
		// ctx ended during the handshake: the watchdog closed nc.
		return nil, fmt.Errorf("no answer: %w", ctx.Err())
	}
	if err != nil {
		if nc != nil {
			_ = nc.Close()
		}
		return nil, err
	}
	return &session{l: l, nc: nc}, nil
}

// ctxDialer is go-libvirt's dialer for the transports connectURI allows
// (unix and tls), bounded by ctx; it keeps the connection it made and
// closes it if ctx ends before dial's handshake is done.
type ctxDialer struct {
	ctx context.Context
	uri *url.URL

	mu   sync.Mutex
	nc   net.Conn
	stop func() bool
}

// defaultSocket is the system daemon's socket (go-libvirt's default).
const defaultSocket = "/var/run/libvirt/libvirt-sock"

func (d *ctxDialer) Dial() (net.Conn, error) {
	nc, err := d.dial()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nc = nc
	d.stop = context.AfterFunc(d.ctx, func() { _ = nc.Close() })
	return nc, nil
}

func (d *ctxDialer) dial() (net.Conn, error) {
	q := d.uri.Query()
	transport := "unix"
	if _, t, ok := strings.Cut(d.uri.Scheme, "+"); ok {
		transport = t
	}
	switch transport {
	case "unix":
		path := q.Get("socket")
		if path == "" {
			path = defaultSocket
		}
		var nd net.Dialer
		return nd.DialContext(d.ctx, "unix", path)
	case "tls":
		var opts []dialers.TLSOption
		if port := d.uri.Port(); port != "" {
			opts = append(opts, dialers.UseTLSPort(port))
		}
		if p := q.Get("pkipath"); p != "" {
			opts = append(opts, dialers.UsePKIPath(p))
		}
		if noVerify(d.uri) {
			opts = append(opts, dialers.WithInsecureNoVerify())
		}
		// go-libvirt's TLS dialer takes no context (it gives up after
		// 20 s): wait for it within ctx, and close what it makes too late.
		type result struct {
			nc  net.Conn
			err error
		}
		ch := make(chan result, 1)
		tlsd := dialers.NewTLS(d.uri.Hostname(), opts...)
		go func() {
			nc, err := tlsd.Dial()
			ch <- result{nc, err}
		}()
		select {
		case r := <-ch:
			return r.nc, r.err
		case <-d.ctx.Done():
			go func() {
				if r := <-ch; r.nc != nil {
					_ = r.nc.Close()
				}
			}()
			return nil, d.ctx.Err()
		}
	}
	return nil, fmt.Errorf("transport %q is not supported", transport)
}

// closeGrace bounds how long Close waits for the daemon to acknowledge.
const closeGrace = 5 * time.Second

// Close disconnects from the daemon; a daemon that does not answer within
// a few seconds has its connection closed all the same.
func (c *Client) Close() error {
	c.smu.Lock()
	s := c.s
	c.s, c.closed = nil, true
	c.smu.Unlock()
	if s == nil || s.dropped.Load() {
		return nil
	}
	t := time.AfterFunc(closeGrace, func() { s.drop(errClosed) })
	err := s.l.Disconnect()
	t.Stop()
	s.drop(errClosed)
	if err != nil {
		return fmt.Errorf("libvirt: disconnecting: %w", err)
	}
	return nil
}
