package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/config"
)

// raftIn is a dry agent's file with a raft section bound at bind.
func raftIn(bind, extra string) string {
	return fmt.Sprintf(`tick: 1s
dry_run: true
clusters: [{name: web, min: 1, max: 4, scalable_roles: [app]}]
nodes: [{cluster: web, id: web-1, role: app, address: "127.0.0.1:1"}]
metrics:
  url: http://127.0.0.1:1
  queries: [{name: utilization, query: up, per_node: true}]
raft:
  node_id: a1
  bind: %q
  data_dir: /tmp/fixr-unused
%s`, bind, extra)
}

// TestRaftInTheClearBeyondLoopbackIsRefused: raft without tls on an
// address the network reaches is refused, naming the key and its line,
// unless raft.insecure says so; on loopback it is allowed.
func TestRaftInTheClearBeyondLoopbackIsRefused(t *testing.T) {
	tls := "  tls: {ca_file: /nonexistent/ca.pem, cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem}\n"
	for _, c := range []struct{ name, file, want string }{
		{"a bind on the network", raftIn("10.0.0.1:7001", ""), "raft.yaml: line 10: raft.bind: 10.0.0.1:7001 is reachable from the network, and raft has no tls"},
		{"all interfaces, advertised on loopback", raftIn("0.0.0.0:7001", "  advertise: 127.0.0.1:7001\n"), "raft.yaml: line 10: raft.bind: 0.0.0.0:7001 is reachable from the network"},
		{"an advertise on the network", raftIn("127.0.0.1:7001", "  advertise: 10.0.0.1:7001\n"), "raft.yaml: line 12: raft.advertise: 10.0.0.1:7001 is reachable from the network"},
		{"insecure beside tls", raftIn("10.0.0.1:7001", "  insecure: true\n"+tls), "raft.yaml: line 12: raft.insecure: true, but raft.tls is given"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte(c.file), "raft.yaml")
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
	for name, file := range map[string]string{
		"127.0.0.1":                        raftIn("127.0.0.1:7001", ""),
		"another loopback address":         raftIn("127.0.0.2:7001", ""),
		"::1":                              raftIn("[::1]:7001", ""),
		"localhost":                        raftIn("localhost:7001", ""),
		"the network, by raft.insecure":    raftIn("10.0.0.1:7001", "  insecure: true\n"),
		"all interfaces, by raft.insecure": raftIn("0.0.0.0:7001", "  advertise: 10.0.0.1:7001\n  insecure: true\n"),
	} {
		if _, err := config.Parse([]byte(file), "raft.yaml"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestTheAPIInTheClearBeyondLoopbackIsRefused: --listen on an address the
// network reaches needs api.tls, or api.insecure or --insecure.
func TestTheAPIInTheClearBeyondLoopbackIsRefused(t *testing.T) {
	tls := config.APIConfig{TLS: &config.TLSFiles{CertFile: "c", KeyFile: "k"}}
	for _, c := range []struct {
		listen string
		api    config.APIConfig
		flag   bool
		want   string // "" = allowed
	}{
		{listen: "10.0.0.1:9808", want: "--listen: 10.0.0.1:9808 is reachable from the network, and the API has no tls"},
		{listen: ":9808", want: "--listen: :9808 is reachable from the network"},
		{listen: "0.0.0.0:9808", want: "--listen: 0.0.0.0:9808 is reachable"},
		{listen: "9808", want: `--listen: "9808" is not host:port`},
		{listen: "127.0.0.1:9808"},
		{listen: "[::1]:9808"},
		{listen: "localhost:9808"},
		{listen: "10.0.0.1:9808", api: tls},
		{listen: "10.0.0.1:9808", api: config.APIConfig{Insecure: true}},
		{listen: "10.0.0.1:9808", flag: true},
	} {
		err := config.CheckListen(c.listen, c.api, c.flag)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)) {
			t.Errorf("%s (api %+v, --insecure %v): got %v, want %q", c.listen, c.api, c.flag, err, c.want)
		}
	}
	const api = "tick: 1s\nclusters: [{name: web, max: 2}]\nworld: {kind: sim}\napi:\n  tls: {cert_file: c, key_file: k}\n  insecure: true\n"
	if _, err := config.Parse([]byte(api), "agent.yaml"); err == nil || !strings.HasPrefix(err.Error(), "agent.yaml: line 6: api.insecure: true, but api.tls is given") {
		t.Errorf("api.insecure beside api.tls: %v", err)
	}
}

// TestWhatIsInTheClearIsNamed: what the operator allowed in the clear is
// what the agent warns of, and nothing on loopback or over TLS.
func TestWhatIsInTheClearIsNamed(t *testing.T) {
	c, err := config.Parse([]byte(raftIn("10.0.0.1:7001", "  insecure: true\n")), "raft.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := c.InTheClear("10.0.0.1:9808")
	if len(got) != 2 || !strings.Contains(got[0], "raft runs without TLS on 10.0.0.1:7001") || !strings.Contains(got[1], "the API is served without TLS on 10.0.0.1:9808") {
		t.Errorf("in the clear: %q", got)
	}
	c, err = config.Parse([]byte(raftIn("127.0.0.1:7001", "")), "raft.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.InTheClear("127.0.0.1:9808"); len(got) != 0 {
		t.Errorf("on loopback: %q", got)
	}
}
