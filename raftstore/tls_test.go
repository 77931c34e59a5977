package raftstore

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// nodeTLS is a TLSConfig with a certificate ca issues for name.
func nodeTLS(t *testing.T, ca *testenv.CA, name string) TLSConfig {
	t.Helper()
	caFile, certFile, keyFile := ca.Files(t, name)
	return TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}
}

// refusalLog collects the warnings of a node's transport.
type refusalLog struct{ lines chan string }

func (r refusalLog) Write(p []byte) (int, error) {
	select {
	case r.lines <- string(p):
	default:
	}
	return len(p), nil
}

func openTLS(t *testing.T, id, addr string, bootstrap bool, peers []Peer, c TLSConfig, log hclog.Logger) *Store {
	t.Helper()
	cfg := Config{NodeID: id, BindAddr: addr, DataDir: t.TempDir(), Bootstrap: bootstrap, Peers: peers,
		Transport: TLSTransport(c), Logger: log}
	relaxed(&cfg)
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Three nodes with certificates from one CA replicate over mutual TLS; a
// node with a certificate from another CA, and a client with none, are
// refused at the handshake.
func TestMutualTLS(t *testing.T) {
	ca, rogueCA := testenv.NewCA(t, "mitosis raft CA"), testenv.NewCA(t, "someone else's CA")
	var peers []Peer
	addrs := map[string]string{}
	for _, id := range []string{"n1", "n2", "n3"} {
		addrs[id] = testenv.FreeAddr(t)
		peers = append(peers, Peer{ID: id, Address: addrs[id]})
	}
	refused := refusalLog{lines: make(chan string, 64)}
	var stores []*Store
	for i, p := range peers {
		log := hclog.NewNullLogger()
		if i == 0 {
			log = hclog.New(&hclog.LoggerOptions{Output: refused, Level: hclog.Warn})
		}
		stores = append(stores, openTLS(t, p.ID, p.Address, true, peers, nodeTLS(t, ca, p.ID), log))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var leader *Store
	for leader == nil && ctx.Err() == nil {
		for _, s := range stores {
			if s.IsLeader() {
				leader = s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if leader == nil {
		t.Fatal("no leader over TLS")
	}
	if err := leader.PutNode(ctx, plan.Node{ID: "web-1", Cluster: "web", Role: "app", State: plan.NodeReady}); err != nil {
		t.Fatal(err)
	}
	for _, s := range stores {
		for {
			st, _ := s.State(ctx, "web")
			if len(st.Nodes) == 1 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s never got the write over TLS", s.ID())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A node with a certificate from another CA cannot join: added as a
	// voter, it never receives the registry.
	rogueAddr := testenv.FreeAddr(t)
	rogue := openTLS(t, "rogue", rogueAddr, false, nil, nodeTLS(t, rogueCA, "rogue"), hclog.NewNullLogger())
	jctx, jcancel := context.WithTimeout(ctx, 3*time.Second)
	_ = leader.AddVoter(jctx, "rogue", rogueAddr) // may time out: the rogue never answers
	jcancel()
	time.Sleep(time.Second)
	if st, _ := rogue.State(ctx, "web"); len(st.Nodes) != 0 {
		t.Error("the rogue node received the registry")
	}

	// A raw connection with the rogue's certificate, and one without any,
	// fail at the handshake with a member.
	rogueCfg := nodeTLS(t, rogueCA, "rogue2")
	_, rogueClient, err := rogueCfg.configs()
	if err != nil {
		t.Fatal(err)
	}
	caPool := ca.Pool
	for name, cfg := range map[string]*tls.Config{
		"another CA's certificate": {Certificates: rogueClient.Certificates, RootCAs: caPool, MinVersion: tls.VersionTLS13},
		"no certificate":           {RootCAs: caPool, MinVersion: tls.VersionTLS13},
	} {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addrs["n1"], cfg)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = c.Write([]byte{0}) // an RPC type byte
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil {
			t.Errorf("a peer with %s was answered", name)
		}
	}
	for seen := false; !seen; {
		select {
		case line := <-refused.lines:
			seen = strings.Contains(line, "raft peer refused")
		case <-time.After(5 * time.Second):
			t.Fatal("n1 logged no refusal")
		}
	}

	for _, bad := range []struct {
		c    TLSConfig
		want string
	}{
		{TLSConfig{CertFile: "x", KeyFile: "y"}, "raft.tls.ca_file: required"},
		{TLSConfig{CAFile: nodeTLS(t, ca, "x").CAFile, CertFile: "/nonexistent.pem", KeyFile: "y"}, "raft.tls.cert_file"},
	} {
		if err := bad.c.Validate(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Validate(%+v) = %v, want %q", bad.c, err, bad.want)
		}
	}
}
