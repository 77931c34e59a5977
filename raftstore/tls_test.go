package raftstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
)

// nodeTLS is a TLSConfig with a certificate ca issues for name (an IP SAN
// for 127.0.0.1, server and client authentication), in files.
func nodeTLS(t *testing.T, ca *testenv.CA, name string) TLSConfig {
	t.Helper()
	caFile, certFile, keyFile := ca.Files(t, name)
	return TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}
}

// logBuf collects a node's log lines, warnings and errors.
type logBuf struct{ testenv.Buffer }

func (l *logBuf) logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: l, Level: hclog.Warn})
}

// hasLine reports whether one line of the log holds every part.
func (l *logBuf) hasLine(parts ...string) bool {
	for _, line := range strings.Split(l.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// TestMutualTLS: three nodes with certificates from one CA form a
// cluster over mutual TLS (n1 bootstraps, n2 and n3 join with AddVoter)
// and replicate; a node with a certificate from another CA, a raft RPC
// carrying such a certificate, and a client with no certificate are all
// refused at the handshake, and the leader says so in its log.
func TestMutualTLS(t *testing.T) {
	ca, rogueCA := testenv.NewCA(t, "mitosis raft CA"), testenv.NewCA(t, "someone else's CA")
	logs := map[string]*logBuf{}
	nodes := tcpCluster(t, func(cfg *Config) {
		relaxed(cfg)
		c := nodeTLS(t, ca, cfg.NodeID)
		cfg.TLS = &c // and Transport nil: Open picks TLSTransport
		logs[cfg.NodeID] = &logBuf{}
		cfg.Logger = logs[cfg.NodeID].logger()
	})
	l := leaderOf(t, nodes)
	leaderLog := logs[l.ID()]

	t.Run("three nodes replicate", func(t *testing.T) {
		ctx := populate(t, l)
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		want := ledgerJSON(t, l)
		eventually(t, "the followers to apply the leader's writes over TLS", func() bool {
			for _, s := range nodes {
				if b, _ := s.LedgerJSON(); !bytes.Equal(b, want) {
					return false
				}
			}
			return true
		})
	})

	t.Run("a node with another CA's certificate cannot join", func(t *testing.T) {
		rogueTLS := nodeTLS(t, rogueCA, "rogue")
		cfg := Config{NodeID: "rogue", BindAddr: "127.0.0.1:0", DataDir: t.TempDir(), TLS: &rogueTLS, Logger: hclog.NewNullLogger()}
		relaxed(&cfg)
		rogue, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer rogue.Close()
		empty, err := newFSM().marshal()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Three of four voters are a quorum: the change commits, but the
		// leader cannot reach the rogue.
		if err := l.AddVoter(ctx, "rogue", rogue.Addr()); err != nil {
			t.Logf("AddVoter rogue: %v", err)
		}
		if err := l.PutNode(ctx, node("after-rogue")); err != nil {
			t.Fatal(err)
		}
		want := ledgerJSON(t, l)
		eventually(t, "the members to apply the write made after the rogue was added", func() bool {
			for _, s := range nodes {
				if b, _ := s.LedgerJSON(); !bytes.Equal(b, want) {
					return false
				}
			}
			return true
		})
		eventually(t, "the leader to log why it cannot reach the rogue", func() bool {
			return leaderLog.hasLine("rogue", "certificate signed by unknown authority")
		})
		time.Sleep(500 * time.Millisecond) // more heartbeats: still nothing gets through
		if b := ledgerJSON(t, rogue); !bytes.Equal(b, empty) || rogue.AppliedIndex() != 0 {
			t.Errorf("the rogue received the registry (applied index %d): %s", rogue.AppliedIndex(), b)
		}
	})

	t.Run("a raft RPC with another CA's certificate is refused at the handshake", func(t *testing.T) {
		// The rogue knows our CA (it is public) and presents its own
		// certificate whatever the server asks for.
		rogueTLS := nodeTLS(t, rogueCA, "rogue2")
		cert, err := tls.LoadX509KeyPair(rogueTLS.CertFile, rogueTLS.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		err = rawRPC(l.Addr(), &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS13,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }})
		if err == nil || !strings.Contains(err.Error(), "remote error: tls:") {
			t.Errorf("a raft RPC with another CA's certificate: %v, want the leader's TLS alert", err)
		}
		eventually(t, "the leader to log the refusal", func() bool {
			return leaderLog.hasLine("raft peer refused: TLS handshake failed", "certificate signed by unknown authority")
		})

		// Through the StreamLayer and raft's transport, as a rogue node
		// would: with its own CA, it does not trust the leader either;
		// with ours, it has no certificate the leader accepts.
		mixed := TLSConfig{CAFile: nodeTLS(t, ca, "x").CAFile, CertFile: rogueTLS.CertFile, KeyFile: rogueTLS.KeyFile}
		for name, c := range map[string]TLSConfig{"the rogue's own CA": rogueTLS, "our CA": mixed} {
			trans, err := NewTLSTransport(c, "127.0.0.1:0", "", hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			var resp raft.AppendEntriesResponse
			err = trans.AppendEntries("n1", raft.ServerAddress(l.Addr()), &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("rogue"), Addr: []byte(trans.LocalAddr())}, Term: l.Term() + 1}, &resp)
			_ = trans.(raft.WithClose).Close()
			if err == nil || !strings.Contains(err.Error(), "tls") {
				t.Errorf("AppendEntries from a rogue transport trusting %s: %v, want a TLS error", name, err)
			}
		}
		if st := l.IsLeader(); !st {
			t.Error("a rogue's RPC with a higher term deposed the leader")
		}
	})

	t.Run("a client without a certificate is refused", func(t *testing.T) {
		err := rawRPC(l.Addr(), &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS13})
		if err == nil || !strings.Contains(err.Error(), "remote error: tls:") {
			t.Errorf("a raft RPC with no certificate: %v, want the leader's TLS alert", err)
		}
		eventually(t, "the leader to log the refusal", func() bool {
			return leaderLog.hasLine("raft peer refused: TLS handshake failed", "certificate")
		})
	})
}

// rawRPC dials addr with cfg, finishes the handshake, sends the first byte
// of a raft RPC (its type) and reads the answer: in TLS 1.3 the server
// checks the client's certificate after the client's side of the
// handshake is done, so a refusal arrives as an alert on the first read.
func rawRPC(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte{0}); err != nil { // rpcAppendEntries
		return err
	}
	_, err = c.Read(make([]byte, 1))
	return err
}

func TestTLSConfigValidate(t *testing.T) {
	ca := testenv.NewCA(t, "mitosis raft CA")
	good := nodeTLS(t, ca, "n1")
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    TLSConfig
		want []string
	}{
		{"nothing set", TLSConfig{}, []string{"raft.tls.ca_file: required", "raft.tls.cert_file: required", "raft.tls.key_file: required"}},
		{"no CA", TLSConfig{CertFile: good.CertFile, KeyFile: good.KeyFile}, []string{"raft.tls.ca_file: required"}},
		{"a missing certificate file", TLSConfig{CAFile: good.CAFile, CertFile: "/nonexistent/n1.pem", KeyFile: good.KeyFile}, []string{"raft.tls.cert_file: ", "/nonexistent/n1.pem"}},
		{"a missing key file", TLSConfig{CAFile: good.CAFile, CertFile: good.CertFile, KeyFile: "/nonexistent/n1.key"}, []string{"raft.tls.key_file: ", "/nonexistent/n1.key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to say %q", err, w)
				}
			}
			// Open refuses it before it listens.
			_, err = Open(Config{NodeID: "n1", BindAddr: "127.0.0.1:0", DataDir: t.TempDir(), TLS: &tc.c, Logger: hclog.NewNullLogger()})
			if err == nil || !strings.Contains(err.Error(), tc.want[0]) {
				t.Errorf("Open = %v, want it to say %q", err, tc.want[0])
			}
		})
	}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
	bad := good
	bad.CAFile = notPEM
	if _, err := NewTLSTransport(bad, "127.0.0.1:0", "", nil); err == nil || !strings.Contains(err.Error(), "raft.tls.ca_file") {
		t.Errorf("a CA file without a certificate: %v", err)
	}
	_, err := Open(Config{NodeID: "n1", BindAddr: "127.0.0.1:0", DataDir: t.TempDir(), TLS: &good, Transport: TCPTransport})
	if err == nil || !strings.Contains(err.Error(), "transport and tls") {
		t.Errorf("Open with both TLS and a transport: %v", err)
	}
	if _, err := NewTLSTransport(good, "0.0.0.0:0", "", nil); err == nil || !strings.Contains(err.Error(), "advertise") {
		t.Errorf("an unspecified bind address and no advertise address: %v", err)
	}
}
