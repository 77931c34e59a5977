package raftstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TLSConfig makes raft's traffic mutual TLS: every node presents a
// certificate from the CA, and accepts only peers that do. Each node's
// certificate must name the address the others dial it at (an IP SAN
// such as IP:127.0.0.1 for nodes on loopback, or a DNS SAN; or set
// ServerName to a name all the certificates carry), and allow both server
// and client authentication (extended key usages serverAuth and
// clientAuth).
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName, if set, is the name every peer's certificate is checked
	// for, instead of the host of the address dialled.
	ServerName string `yaml:"server_name"`
}

// Validate names every field at fault (by its key in the agent's file):
// the three files are required and must exist.
func (c TLSConfig) Validate() error {
	var errs []error
	for _, f := range []struct{ key, path string }{{"ca_file", c.CAFile}, {"cert_file", c.CertFile}, {"key_file", c.KeyFile}} {
		if f.path == "" {
			errs = append(errs, fmt.Errorf("raft.tls.%s: required", f.key))
		} else if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("raft.tls.%s: %w", f.key, err))
		}
	}
	return errors.Join(errs...)
}

// configs loads the files into the two sides' TLS settings.
func (c TLSConfig) configs() (server, client *tls.Config, err error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("raft.tls.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("raft.tls.ca_file %s: no PEM certificate in it", c.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("raft.tls: cert_file and key_file: %w", err)
	}
	server = &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS13,
	}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: c.ServerName, MinVersion: tls.VersionTLS13}
	return server, client, nil
}

// TLSTransport is a Config.Transport that carries raft over mutual TLS
// (a raft.StreamLayer on crypto/tls under raft's network transport), on
// cfg.BindAddr, advertising cfg.AdvertiseAddr, tuned by cfg.MaxPool and
// cfg.TransportTimeout. Config.TLS is the shorter way to ask for it. A
// peer without a certificate from the CA fails the handshake: it can
// neither join nor send a single RPC.
func TLSTransport(c TLSConfig) TransportFunc {
	return func(cfg Config, logger hclog.Logger) (raft.Transport, error) {
		return newTLSTransport(c, cfg.BindAddr, cfg.AdvertiseAddr, cfg.MaxPool, cfg.TransportTimeout, logger)
	}
}

// NewTLSTransport is raft's network transport over mutual TLS, listening
// on bind and advertising advertise (empty: the address bound, which must
// then not be unspecified), with a pool of DefaultMaxPool connections per
// peer and DefaultTransportTimeout for each dial and RPC. The
// certificates are read from the files once, here; nothing of them is
// ever logged.
func NewTLSTransport(c TLSConfig, bind, advertise string, logger hclog.Logger) (raft.Transport, error) {
	return newTLSTransport(c, bind, advertise, DefaultMaxPool, DefaultTransportTimeout, logger)
}

func newTLSTransport(c TLSConfig, bind, advertise string, maxPool int, timeout time.Duration, logger hclog.Logger) (raft.Transport, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	server, client, err := c.configs()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raftstore: transport on %s: %w", bind, err)
	}
	var adv net.Addr = ln.Addr()
	if advertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", advertise); err != nil {
			ln.Close()
			return nil, fmt.Errorf("raftstore: advertise address: %w", err)
		}
	}
	if tcp, ok := adv.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		ln.Close()
		return nil, errors.New("raftstore: the bind address is unspecified (0.0.0.0): give an advertise address")
	}
	layer := &tlsLayer{Listener: ln, adv: adv, server: server, client: client, log: logger, done: make(chan struct{})}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: maxPool, Timeout: timeout, Logger: logger,
	}), nil
}

// The StreamLayer's contract, checked by the compiler.
var _ raft.StreamLayer = (*tlsLayer)(nil)

// tlsLayer is a raft.StreamLayer over mutual TLS.
type tlsLayer struct {
	net.Listener
	adv            net.Addr
	server, client *tls.Config
	log            hclog.Logger

	start  sync.Once
	conns  chan net.Conn // handshaken
	failed chan struct{} // closed when the listener fails
	err    error         // why, once failed is closed
	done   chan struct{} // closed by Close
	close  sync.Once
}

// handshakeTimeout bounds a peer's handshake.
const handshakeTimeout = 5 * time.Second

// Accept returns the next connection whose peer proved its certificate.
// Each handshake runs in a goroutine of its own, bounded by
// handshakeTimeout, so that a slow or bad peer holds up no one; a failed
// one is logged and closed.
func (l *tlsLayer) Accept() (net.Conn, error) {
	l.start.Do(func() {
		l.conns, l.failed = make(chan net.Conn), make(chan struct{})
		go l.acceptLoop()
	})
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.failed:
		return nil, l.err
	}
}

func (l *tlsLayer) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.err = err
			close(l.failed)
			return
		}
		go func() {
			tc := tls.Server(c, l.server)
			_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
			if err := tc.Handshake(); err != nil {
				l.log.Warn("raft peer refused: TLS handshake failed", "remote", c.RemoteAddr().String(), "error", err)
				_ = c.Close()
				return
			}
			_ = tc.SetDeadline(time.Time{})
			select {
			case l.conns <- tc:
			case <-l.done:
				_ = tc.Close()
			}
		}()
	}
}

// Close stops accepting.
func (l *tlsLayer) Close() error {
	l.close.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Dial connects to a peer, proving this node's certificate and checking
// the peer's.
func (l *tlsLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	cfg := l.client.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(string(address))
		if err != nil {
			return nil, err
		}
		cfg.ServerName = host
	}
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", string(address), cfg) // the handshake too, within timeout
	if err != nil {
		return nil, fmt.Errorf("raft over TLS to %s: %w", address, err)
	}
	return c, nil
}

// Addr is the address the other nodes reach this one at.
func (l *tlsLayer) Addr() net.Addr { return l.adv }
