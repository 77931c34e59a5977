package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/config"
	"github.com/mitosis-autoscaler/mitosis/sim"
)

const base = `
tick: 15s
clusters:
  - name: web
    min: 2
    max: 8
metrics:
  url: http://127.0.0.1:9090
  queries:
    - {name: utilization, query: 'avg by (instance) (rate(app_busy_seconds_total[1m]))', per_node: true}
`

// acts is what an agent that acts needs besides a hypervisor.
const acts = `
dispatcher: {kind: haproxy, haproxy: {socket: /run/haproxy/admin.sock, backend: app, servers: [web-1]}}
node_api: {token_file: /etc/mitosis/node-token, port: 8080}
`

func TestParseChoosesTheHypervisorByKind(t *testing.T) {
	c, err := config.Parse([]byte(base+`
hypervisor:
  kind: libvirt
  libvirt: {uri: "qemu:///system", image_dir: /var/lib/mitosis/images, host: kvm-1}
`+acts), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Hypervisor.Kind != "libvirt" || c.Hypervisor.Libvirt.ImageDir != "/var/lib/mitosis/images" || c.Hypervisor.Libvirt.Host != "kvm-1" {
		t.Errorf("hypervisor: %+v %+v", c.Hypervisor, c.Hypervisor.Libvirt)
	}
	if len(c.Metrics.Queries) != 1 || !c.Metrics.Queries[0].PerNode || c.Metrics.Staleness == 0 {
		t.Errorf("metrics (with defaults): %+v", c.Metrics)
	}
	if c.Tick.Duration.String() != "15s" || c.Clusters[0].Max != 8 {
		t.Errorf("the controller's keys: %+v", c.Config)
	}
	creds := filepath.Join(t.TempDir(), "vsphere")
	if err := os.WriteFile(creds, []byte("mitosis@vsphere.local\nhunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := config.Parse([]byte(base+`
hypervisor:
  kind: vsphere
  vsphere: {url: "https://vc.example.com/sdk", datacenter: dc1, folder: clones, credentials_file: `+creds+`, address_wait: 2m}
`+acts), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if vs := v.Hypervisor.VSphere; vs.Datacenter != "dc1" || vs.AddressWait == nil || vs.AddressWait.String() != "2m0s" || vs.CredentialsFile != creds {
		t.Errorf("vsphere: %+v", vs)
	}
}

func TestParseNeedsMetrics(t *testing.T) {
	noMetrics := strings.Split(base, "metrics:")[0] + "hypervisor: {kind: libvirt, libvirt: {uri: 'test:///default', image_dir: /tmp}}\n"
	if _, err := config.Parse([]byte(noMetrics), "agent.yaml"); err == nil || !strings.Contains(err.Error(), "metrics: url: required") {
		t.Errorf("no metrics section: %v", err)
	}
	badMatch := strings.Split(base, "metrics:")[0] + "metrics: {url: 'http://127.0.0.1:9090', queries: [{name: q, query: up, per_node: true, match: ip}]}\nhypervisor: {kind: libvirt, libvirt: {uri: 'test:///default', image_dir: /tmp}}\n"
	if _, err := config.Parse([]byte(badMatch), "agent.yaml"); err == nil || !strings.Contains(err.Error(), `metrics: queries[0].match: "ip"`) {
		t.Errorf("a bad match: %v", err)
	}
}

// A dry run touches no VM: it needs no hypervisor section.
func TestADryRunNeedsNoHypervisor(t *testing.T) {
	c, err := config.Parse([]byte(base+"dry_run: true\nnodes: [{cluster: web, id: web-1, role: app, address: '127.0.0.1:8001'}]\n"), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.DryRun || len(c.Nodes) != 1 || c.Nodes[0].Address != "127.0.0.1:8001" {
		t.Errorf("parsed %+v", c)
	}
}

func TestParseNamesWhatIsWrong(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"no kind", "hypervisor: {libvirt: {uri: x}}", "hypervisor.kind: required"},
		{"an unknown kind", "hypervisor: {kind: xen}", `unknown kind "xen"`},
		{"the kind's section missing", "hypervisor: {kind: vsphere}", "hypervisor.vsphere: required"},
		{"another kind's section", "hypervisor: {kind: libvirt, libvirt: {uri: x}, vsphere: {url: y}}", "hypervisor.vsphere: given, but hypervisor.kind is libvirt"},
		{"an unknown key in a section", "hypervisor:\n  kind: libvirt\n  libvirt:\n    uri: x\n    imagedir: /tmp\n", `line 15: unknown key "imagedir"`},
		{"a secret in the file", "hypervisor: {kind: vsphere, vsphere: {url: y, password: hunter2}}", `unknown key "password"`},
		{"a bad duration", "hypervisor: {kind: vsphere, vsphere: {url: y, address_wait: soon}}", `line 11: hypervisor.vsphere.address_wait: a duration such as 30s is expected, not "soon"`},
		{"no hypervisor for an agent that acts", "", "hypervisor.kind: required"},
		{"a node of an unknown cluster", "dry_run: true\nnodes: [{cluster: db, id: n1, role: app}]", `nodes[0].cluster: "db" is not a configured cluster`},
		{"a node listed twice", "dry_run: true\nnodes: [{cluster: web, id: n1, role: app}, {cluster: web, id: n1, role: app}]", `nodes[1].id: "n1" is listed twice`},
		{"a node without a role", "dry_run: true\nnodes: [{cluster: web, id: n1}]", "nodes[0].role: required"},
		{"a bad hypervisor in a dry run", "dry_run: true\nhypervisor: {kind: xen}", `unknown kind "xen"`},
		{"a bad libvirt section in a dry run", "dry_run: true\nhypervisor: {kind: libvirt, libvirt: {uri: 'test:///default', image_dir: /tmp, clone_mode: warm}}", `hypervisor.libvirt: clone_mode "warm"`},
		{"credentials in a vsphere url, in a dry run", "dry_run: true\nhypervisor: {kind: vsphere, vsphere: {url: 'https://vc/sdk?user=a&password=hunter2', datacenter: dc1}}", "hypervisor.vsphere: url"},
		{"a simulated world with metrics", "world: {kind: sim}", "metrics: not with world.kind sim"},
		{"a simulated world with a hypervisor", "world: {kind: sim}\nhypervisor: {kind: libvirt, libvirt: {uri: x}}", "hypervisor: not with world.kind sim"},
		{"the old simulated hypervisor", "hypervisor: {kind: sim}", "hypervisor.kind: sim is now a world of its own"},
		{"the old simulated hypervisor with its section", "hypervisor: {kind: sim, sim: {speed: 10}}", "hypervisor.kind: sim is now a world of its own"},
		{"an unknown world", "world: {kind: mars}", `world.kind: unknown world "mars"`},
		{"a simulation section on real machines", "hypervisor: {kind: libvirt, libvirt: {uri: 'test:///default', image_dir: /tmp}}\nsimulation: {node_capacity: 50}", "simulation: given, but the world is machines"},
		{"a simulation section in a dry run", "dry_run: true\nsimulation: {node_capacity: 50}", "simulation: given, but the world is machines"},
		{"a second document", "---\ntick: 1s", "line 11: a second YAML document"},
		{"nodes as a mapping", "dry_run: true\nnodes: {cluster: web}", "line 12: nodes: a list is expected, not a mapping"},
		{"a process hypervisor without its command", "hypervisor: {kind: process, process: {dir: /tmp}}", "hypervisor.process.command: required"},
		{"a process hypervisor without its directory", "hypervisor: {kind: process, process: {dir: /no/such/dir, command: [demo-node]}}", `hypervisor.process.dir: "/no/such/dir" must be an existing directory`},
		{"a snapshot path without the state", "hypervisor: {kind: process, process: {dir: /tmp, command: [demo-node], snapshot: /-/snapshot}}", "hypervisor.process.snapshot"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte(base+c.yaml+"\n"+acts), "agent.yaml")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "agent.yaml") {
				t.Errorf("got %v, want an error from agent.yaml naming %q", err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error quotes the secret: %v", err)
			}
		})
	}
}

// A dry run asked for on the command line counts before the file is
// checked, as dry_run: true in the file does.
func TestADryRunAskedForByTheCommandLineNeedsNoHypervisor(t *testing.T) {
	if _, err := config.Parse([]byte(base), "agent.yaml"); err == nil || !strings.Contains(err.Error(), "hypervisor.kind: required") {
		t.Fatalf("an agent that acts without a hypervisor: %v", err)
	}
	c, err := config.Parse([]byte(base), "agent.yaml", config.AsDryRun())
	if err != nil {
		t.Fatal(err)
	}
	if !c.DryRun {
		t.Error("the config does not say it runs dry")
	}
	p := filepath.Join(t.TempDir(), "min.yaml")
	if err := os.WriteFile(p, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.LoadFile(p, config.AsDryRun()); err != nil {
		t.Errorf("LoadFile as a dry run: %v", err)
	}
	if _, err := config.Parse([]byte(base+"hypervisor: {kind: xen}\n"), "agent.yaml", config.AsDryRun()); err == nil || !strings.Contains(err.Error(), `unknown kind "xen"`) {
		t.Errorf("a bad hypervisor given in a dry run is still checked: %v", err)
	}
}

// In a dry run each acting section given is checked on its own, and its
// own error named; none demands the others.
func TestADryRunChecksEachActingSectionOnItsOwn(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"a node API without its token", "node_api: {port: 9100}", "agent.yaml: node_api.token_file: required"},
		{"a node API with a bad port", "node_api: {port: 99999}", "agent.yaml: node_api.port: 99999 is not a port"},
		{"an unknown dispatcher", "dispatcher: {kind: nginx}", `agent.yaml: dispatcher.kind: "nginx" is not a known dispatcher`},
		{"a dispatcher without its socket", "dispatcher: {kind: haproxy, haproxy: {backend: app}}", "agent.yaml: dispatcher.haproxy.socket: required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte(base+"dry_run: true\n"+c.yaml+"\n"), "agent.yaml")
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "required to act") {
				t.Errorf("a dry run is told it needs what acting needs: %v", err)
			}
		})
	}
	for _, ok := range []string{"node_api: {token_file: /etc/mitosis/node-token, port: 9100}", "dispatcher: {kind: haproxy, haproxy: {socket: /s, backend: app}}"} {
		if _, err := config.Parse([]byte(base+"dry_run: true\n"+ok+"\n"), "agent.yaml"); err != nil {
			t.Errorf("%s alone in a dry run: %v", ok, err)
		}
	}
}

// Nodes that would collide, or that name a host the cluster does not
// have, are refused, naming the node and the key.
func TestNodesThatCollideAreRefused(t *testing.T) {
	hosts := strings.Replace(base, "    max: 8\n", "    max: 8\n    hosts: [{name: esx-1}, {name: esx-2}]\n", 1)
	for _, c := range []struct{ name, nodes, want string }{
		{"two nodes at one address", "{cluster: web, id: web-1, role: app, address: '10.0.0.1:80'}, {cluster: web, id: web-2, role: app, address: '10.0.0.1:80'}",
			`nodes[1].address: node web-2's "10.0.0.1:80" is node web-1's too (nodes[0])`},
		{"two nodes of one VM", "{cluster: web, id: web-1, role: app, vm: vm-1}, {cluster: web, id: web-2, role: app, vm: vm-1}",
			`nodes[1].vm: node web-2's "vm-1" is node web-1's too (nodes[0])`},
		{"an address that is not one", "{cluster: web, id: web-1, role: app, address: 'not an address::'}",
			`nodes[0].address: node web-1's "not an address::" is not host:port`},
		{"an address without its port", "{cluster: web, id: web-1, role: app, address: '10.0.0.1'}",
			`nodes[0].address: node web-1's "10.0.0.1" is not host:port`},
		{"a port out of range", "{cluster: web, id: web-1, role: app, address: '10.0.0.1:70000'}",
			`nodes[0].address: node web-1's "10.0.0.1:70000" is not host:port: port "70000" is not 1 to 65535`},
		{"a host the cluster does not list", "{cluster: web, id: web-1, role: app, host: esx-9}",
			`nodes[0].host: node web-1's "esx-9" is not one of cluster web's hosts (esx-1, esx-2)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte(hosts+"dry_run: true\nnodes: ["+c.nodes+"]\n"), "agent.yaml")
			if err == nil || !strings.HasPrefix(err.Error(), "agent.yaml: "+c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
	// A cluster that lists no hosts takes any; IPv6 addresses are fine.
	if _, err := config.Parse([]byte(base+"dry_run: true\nnodes: [{cluster: web, id: web-1, role: app, host: esx-9, address: '[fd00::1]:8080', vm: a}, {cluster: web, id: web-2, role: app, address: 'web-2.example:8080', vm: b}]\n"), "agent.yaml"); err != nil {
		t.Errorf("distinct nodes: %v", err)
	}
}

// An agent that acts on real machines needs a dispatcher and the node API;
// each error names the key.
func TestAnAgentThatActsNeedsADispatcherAndTheNodeAPI(t *testing.T) {
	libvirt := "hypervisor: {kind: libvirt, libvirt: {uri: 'test:///default', image_dir: /tmp}}\n"
	node := "node_api: {token_file: /etc/mitosis/node-token}\n"
	haproxy := "dispatcher: {kind: haproxy, haproxy: {socket: /run/haproxy.sock, backend: app}}\n"
	twoClusters := strings.Replace(base, "clusters:\n", "clusters:\n  - {name: db, min: 1, max: 2}\n", 1)
	for _, c := range []struct{ name, yaml, want string }{
		{"no dispatcher", libvirt + node, "dispatcher: required to act"},
		{"an unknown dispatcher", libvirt + node + "dispatcher: {kind: nginx}", `dispatcher.kind: "nginx" is not a known dispatcher`},
		{"no haproxy section", libvirt + node + "dispatcher: {kind: haproxy}", "dispatcher.haproxy: required"},
		{"no runtime socket", libvirt + node + "dispatcher: {kind: haproxy, haproxy: {backend: app}}", "dispatcher.haproxy.socket: required"},
		{"no node API", libvirt + haproxy, "node_api: required to act"},
		{"no token", libvirt + haproxy + "node_api: {port: 80}", "node_api.token_file: required"},
		{"a port out of range", libvirt + haproxy + "node_api: {token_file: t, port: 70000}", "node_api.port: 70000 is not a port"},
		{"an unknown key", libvirt + haproxy + "node_api: {token_file: t, token: s3cret}", `unknown key "token"`},
		{"two clusters, one backend", twoClusters + libvirt + node + haproxy, "dispatcher.haproxy: one backend serves one cluster, and the file has 2"},
		{"two clusters, a backend for one", twoClusters + libvirt + node + "dispatcher: {kind: haproxy, clusters: {web: {socket: /s, backend: web}}}", "dispatcher.clusters.db: required"},
		{"a backend for no cluster", twoClusters + libvirt + node + "dispatcher: {kind: haproxy, clusters: {web: {socket: /s, backend: web}, db: {socket: /s, backend: db}, api: {socket: /s, backend: api}}}", "dispatcher.clusters.api: not a configured cluster"},
		{"a cluster's backend without its socket", twoClusters + libvirt + node + "dispatcher: {kind: haproxy, clusters: {web: {socket: /s, backend: web}, db: {backend: db}}}", "dispatcher.clusters.db.socket: required"},
		{"one backend and a backend each", libvirt + node + "dispatcher: {kind: haproxy, haproxy: {socket: /s, backend: app}, clusters: {web: {socket: /s, backend: web}}}", "haproxy (one backend) or clusters (a backend each), not both"},
		{"a node without its address", libvirt + node + haproxy + "nodes: [{cluster: web, id: web-1, role: app, vm: web-1}]", "nodes[0].address: required to act"},
		{"a node without its VM", libvirt + node + haproxy + "nodes: [{cluster: web, id: web-1, role: app, address: '10.0.0.1:80'}]", "nodes[0].vm: required to act"},
		{"a process hypervisor in a dry run without the node API", "dry_run: true\nhypervisor: {kind: process, process: {dir: /tmp, command: [demo-node]}}", "node_api: required by hypervisor.kind process"},
	} {
		t.Run(c.name, func(t *testing.T) {
			yaml := c.yaml
			if !strings.HasPrefix(yaml, twoClusters) {
				yaml = base + yaml
			}
			_, err := config.Parse([]byte(yaml), "agent.yaml")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "agent.yaml") {
				t.Errorf("got %v, want an error from agent.yaml naming %q", err, c.want)
			}
		})
	}
	two, err := config.Parse([]byte(twoClusters+libvirt+node+"dispatcher: {kind: haproxy, clusters: {web: {socket: /s, backend: web}, db: {socket: /s, backend: db}}}\n"), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if b := two.Dispatcher.Clusters; len(b) != 2 || b["db"].Backend != "db" || b["web"].Socket != "/s" {
		t.Errorf("a backend per cluster: %+v", b)
	}
	c, err := config.Parse([]byte(base+node+haproxy+"hypervisor: {kind: process, process: {dir: /tmp, command: [demo-node, --listen, '{address}']}}\n"), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Hypervisor.Process; p.Snapshot != "/-/snapshot?file={state}" || p.Command[2] != "{address}" {
		t.Errorf("process hypervisor with its defaults: %+v", p)
	}
	if c.Dispatcher.HAProxy.Backend != "app" || c.NodeAPI.TokenFile != "/etc/mitosis/node-token" {
		t.Errorf("dispatcher %+v, node API %+v", c.Dispatcher.HAProxy, c.NodeAPI)
	}
}

// parseSimulated reads a file as `mitosis agent` does: Parse, then, for
// a simulated world, its maker (package sim's), the error naming the file.
func parseSimulated(data []byte, name string) (config.File, error) {
	c, err := config.Parse(data, name)
	if err != nil || !c.Simulated() {
		return c, err
	}
	if _, err := sim.WorldOf(c); err != nil {
		return config.File{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// A simulated world's own keys are its maker's to check (package sim's);
// the file's, that nothing real is configured beside it. (That the agent
// needs a maker: agent's TestASimulatedWorldNeedsItsMaker.)
func TestASimulatedWorldIsCheckedWithItsDefaults(t *testing.T) {
	head := "clusters: [{name: web, min: 1, max: 4}]\n"
	c, err := parseSimulated([]byte(head+"world: {kind: sim}\n"), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Simulated() {
		t.Error("world.kind sim is not simulated")
	}
	for _, bad := range []struct{ yaml, want string }{
		{"world: {kind: sim, speed: -1}", "world.speed"},
		{"world: {kind: sim, speed: 0}", "world.speed: 0 must be above 0"},
		{"world: {kind: sim, workload: sine}", `world.workload: "sine" is not one of`},
		{"world: {kind: sim, mode: warp}", "world.mode"},
		{"world: {kind: sim, sped: 3}", "world: line 2: field sped not found"},
		{"world: {kind: sim}\nsimulation: {node_capacity: -3}", "simulation.node_capacity: must be positive"},
		{"world: {kind: sim}\nnodes: [{cluster: web, id: a, role: app}]", "nodes: not with world.kind sim"},
		{"world: {kind: sim}\nraft: {node_id: a1, bind: '127.0.0.1:7001', data_dir: /tmp/unused, bootstrap: true, peers: [{id: a1, address: '127.0.0.1:7001'}]}", "raft: not with world.kind sim"},
		{"world: sim", "world: line 2: want a section such as {kind: sim}"},
	} {
		if _, err := parseSimulated([]byte(head+bad.yaml+"\n"), "sim.yaml"); err == nil || !strings.Contains(err.Error(), bad.want) || !strings.HasPrefix(err.Error(), "sim.yaml: ") {
			t.Errorf("%s: error %v, want one from sim.yaml naming %q", bad.yaml, err, bad.want)
		}
	}
	if _, err := parseSimulated([]byte(head+"world: {kind: sim}\nsimulation: {initial_nodes: 50}\n"), "sim.yaml"); err == nil ||
		!strings.HasPrefix(err.Error(), "sim.yaml: simulation.initial_nodes: 50 is above clusters[0] (web).max 4") {
		t.Errorf("more initial nodes than the max: %v", err)
	}
	two := "clusters: [{name: a, max: 2}, {name: b, max: 2}]\nworld: {kind: sim}\n"
	if _, err := parseSimulated([]byte(two), "sim.yaml"); err == nil || !strings.Contains(err.Error(), "exactly one cluster") {
		t.Errorf("two clusters: %v", err)
	}
}

// The metrics section's files are checked when the file is parsed, so
// that a bad one is named with the configuration file and its key, as
// every other configuration error is, and not at assembly.
func TestParseNamesTheFileOfABadMetricsSecretOrTLSFile(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	empty := filepath.Join(dir, "password")
	for p, content := range map[string]string{notPEM: "not a certificate", empty: ""} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	head := strings.Split(base, "metrics:")[0]
	query := "  queries: [{name: q, query: up, per_node: true}]\n"
	for _, c := range []struct{ name, metrics, want string }{
		{"a CA file that is not PEM", "  url: https://127.0.0.1:9090\n  tls: {ca_file: " + notPEM + "}\n",
			"agent.yaml: metrics: tls.ca_file: " + notPEM + " holds no PEM certificate"},
		{"a missing CA file", "  url: https://127.0.0.1:9090\n  tls: {ca_file: /nonexistent/ca.pem}\n",
			"agent.yaml: metrics: tls.ca_file: cannot open /nonexistent/ca.pem"},
		{"a password file that is a directory", "  url: http://127.0.0.1:9090\n  basic_auth: {username: m, password_file: " + dir + "}\n",
			"agent.yaml: metrics: basic_auth.password_file: " + dir + " is a directory"},
		{"an empty password file", "  url: http://127.0.0.1:9090\n  basic_auth: {username: m, password_file: " + empty + "}\n",
			"agent.yaml: metrics: basic_auth.password_file: " + empty + " is empty"},
		{"a token file that is a directory", "  url: http://127.0.0.1:9090\n  bearer_token_file: " + dir + "\n",
			"agent.yaml: metrics: bearer_token_file: " + dir + " is a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			yaml := head + "metrics:\n" + c.metrics + query + "dry_run: true\n"
			if _, err := config.Parse([]byte(yaml), "agent.yaml"); err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

// TestTheRaftSectionIsCheckedAgainstItself: what raft would refuse when
// the node starts, or write for good into a bootstrap configuration, is
// refused at parse time, naming the file and the key.
func TestTheRaftSectionIsCheckedAgainstItself(t *testing.T) {
	const base = `tick: 200ms
dry_run: true
clusters: [{name: web, min: 1, max: 4, scalable_roles: [app]}]
nodes: [{cluster: web, id: web-1, role: app, address: "127.0.0.1:1"}]
metrics:
  url: http://127.0.0.1:1
  queries: [{name: utilization, query: up, per_node: true}]
raft:
`
	section := func(bind, extra string, peers ...string) string {
		return base + fmt.Sprintf("  node_id: a1\n  bind: %q\n  data_dir: /tmp/fixr-unused\n  bootstrap: true\n  peers: [%s]\n%s", bind, strings.Join(peers, ", "), extra)
	}
	a1 := `{id: a1, address: "127.0.0.1:7001"}`
	for _, c := range []struct{ name, file, want string }{
		{"a peer address without a port", section("127.0.0.1:7001", "", a1, `{id: a2, address: "127.0.0.2"}`), `raft.yaml: raft.peers[1].address: "127.0.0.2" is not host:port`},
		{"a peer address at port 0", section("127.0.0.1:7001", "", a1, `{id: a2, address: "127.0.0.2:0"}`), `raft.peers[1].address: "127.0.0.2:0" is not host:port: port "0" is not 1 to 65535`},
		{"a peer address that does not resolve", section("127.0.0.1:7001", "", a1, `{id: a2, address: "no-such-host.invalid:7001"}`), "raft.peers[1].address: no-such-host.invalid:7001: host no-such-host.invalid does not resolve"},
		{"its own entry at another address than bind", section("127.0.0.1:7001", "", `{id: a1, address: "127.0.0.1:7009"}`), "raft.peers[0].address: 127.0.0.1:7009 is this agent's own entry (a1), but it is reached at 127.0.0.1:7001 (raft.bind)"},
		{"an api that is no URL", section("127.0.0.1:7001", "", a1, `{id: a2, address: "127.0.0.2:7001", api: "127.0.0.2:9808"}`), `raft.peers[1].api: "127.0.0.2:9808" is not an http(s)://host:port URL`},
		{"an api of another scheme", section("127.0.0.1:7001", "", a1, `{id: a2, address: "127.0.0.2:7001", api: "ftp://127.0.0.2:9808"}`), `raft.peers[1].api: "ftp://127.0.0.2:9808"`},
		{"an id twice", section("127.0.0.1:7001", "", a1, `{id: a2, address: "127.0.0.2:7001"}`, `{id: a2, address: "127.0.0.3:7001"}`), "raft.peers[2].id: a2 is raft.peers[1]'s id too"},
		{"an address twice", section("127.0.0.1:7001", "", a1, `{id: a2, address: "127.0.0.2:7001"}`, `{id: a3, address: "127.0.0.2:7001"}`), "raft.peers[2].address: 127.0.0.2:7001 is raft.peers[1]'s address too"},
		{"a bind without a port", section("127.0.0.1", ""), `raft.bind: "127.0.0.1" is not host:port`},
		{"a bind nobody can dial", section("0.0.0.0:7001", ""), "raft.bind: 0.0.0.0:7001 is not an address the other nodes can dial: set raft.advertise"},
		{"a negative heartbeat timeout", section("127.0.0.1:7001", "  heartbeat_timeout: -1s\n"), "raft.heartbeat_timeout: -1s must be positive (leave it out for 100ms)"},
		{"a heartbeat timeout raft finds too low", section("127.0.0.1:7001", "  heartbeat_timeout: 1ms\n  leader_lease_timeout: 1ms\n"), "raft.heartbeat_timeout: 1ms is too low: at least 5ms"},
		{"a lease above the heartbeat", section("127.0.0.1:7001", "  leader_lease_timeout: 200ms\n"), "raft.leader_lease_timeout: 200ms cannot be above the heartbeat timeout (raft.heartbeat_timeout, 100ms)"},
		{"an election below the heartbeat", section("127.0.0.1:7001", "  heartbeat_timeout: 1s\n  election_timeout: 500ms\n"), "raft.election_timeout: 500ms cannot be below the heartbeat timeout (raft.heartbeat_timeout, 1s)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte(c.file), "raft.yaml")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
	for name, file := range map[string]string{
		"its own entry by name":        section("127.0.0.1:7001", "", `{id: a1, address: "localhost:7001", api: "https://localhost:9808/"}`),
		"an advertised address":        section("0.0.0.0:7001", "  advertise: 127.0.0.1:7001\n  insecure: true\n", a1),
		"raft's own defaults, spelled": section("127.0.0.1:7001", "  heartbeat_timeout: 1s\n  election_timeout: 1s\n  leader_lease_timeout: 500ms\n", a1),
	} {
		if _, err := config.Parse([]byte(file), "raft.yaml"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
