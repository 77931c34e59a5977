// Package haproxy is the dispatcher role played by HAProxy: it drains,
// attaches and removes the servers of one backend through HAProxy's
// runtime API, without a reload, and counts their open sessions.
//
// HAProxy needs a runtime API socket at admin level and a backend for the
// cluster with a dynamic balance algorithm (leastconn, roundrobin, first,
// random; not static-rr nor map-based hashing); clones are added to it as
// dynamic servers (HAProxy 2.4 or newer):
//
//	global
//	    stats socket /run/haproxy/admin.sock mode 600 level admin
//	backend app
//	    balance leastconn
//	    default-server check pool-purge-delay 1s
//	    server web-1 10.0.0.11:8080
//	    server web-2 10.0.0.12:8080
//
// with Config.ServerOptions "check pool-purge-delay 1s" for the clones
// (HAProxy 2.6 does not apply default-server to servers added at run
// time, and starts a dynamic server's health check disabled: Attach
// enables it). HAProxy deletes a server only once it has no connection left,
// idle ones included, and closes idle connections to a server in
// maintenance a few purge delays at a time (5 s by default): a short
// pool-purge-delay makes a removal take seconds instead of tens.
//
// Each saga step maps to runtime API commands:
//
//	Drain    disable agent app/NODE                        (when its agent check is on)
//	         set server app/NODE state drain
//	Attach   add server app/NODE IP:PORT [ServerOptions]   (when absent)
//	         set server app/NODE addr IP port PORT         (when moved)
//	         enable health app/NODE                        (when a check is configured but off)
//	         enable agent app/NODE                         (likewise for an agent check)
//	         set server app/NODE state ready
//	Remove   disable agent app/NODE                        (when its agent check is on)
//	         set server app/NODE state maint
//	         del server app/NODE                           (refused while it has connections)
//	Sessions show stat app 4 -1                            (scur of NODE)
//
// Every step reads the server first with "show servers state app". An
// agent check is turned off while mitosis drains or removes a server,
// because an agent answering "ready" would cancel the drain; Attach turns
// it back on.
//
// It refuses to touch any other backend, and any server that is neither
// one of Config.Servers nor named with Config.ClonePrefix nor as a clone
// of Config.Cluster (plan.IsCloneOf): a typo in the configuration must not
// drain somebody else's server.
package haproxy

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mitosis-autoscaler/mitosis/plan"
)

// Config says which HAProxy, which backend and which servers.
type Config struct {
	// Socket is the path of the runtime API socket (level admin).
	Socket string `yaml:"socket"`
	// Backend is the one backend the cluster's nodes are servers of.
	Backend string `yaml:"backend"`
	// Servers are the servers of the backend's configuration that mitosis
	// may drain and remove: the nodes the cluster started with.
	Servers []string `yaml:"servers"`
	// ClonePrefix names the servers mitosis adds for its clones; it may
	// touch any server so named. "" means "mitosis-", the prefix of the
	// clones of expansions recorded before clones were named <cluster>-c<n>.
	ClonePrefix string `yaml:"clone_prefix"`
	// Cluster is the cluster whose nodes the backend serves, set by whoever
	// opens the dispatcher (not the file): servers named as that cluster's
	// clones (plan.IsCloneOf: web-c17) may be touched. "" allows none.
	Cluster string `yaml:"-"`
	// ServerOptions are appended to "add server" (e.g. "check inter 2s").
	ServerOptions string `yaml:"server_options"`
	// DynamicCookies says the backend keeps sessions on their server with
	// dynamic cookies ("cookie SRV insert indirect nocache dynamic" and a
	// "dynamic-cookie-key"): HAProxy 2.6 refuses "cookie" on a server added
	// at run time and gives it its dynamic cookie only when dynamic
	// cookies are enabled again, which Attach then does. Without
	// persistence a drain cannot let sessions finish where they are.
	DynamicCookies bool `yaml:"dynamic_cookies"`
	// Timeout bounds each runtime API command; 0 means 5 s.
	Timeout time.Duration `yaml:"timeout"`
}

// Dispatcher drives one HAProxy backend. It is safe for concurrent use:
// every command is one connection.
type Dispatcher struct {
	cfg Config
	api runtimeAPI
}

// names HAProxy accepts for a backend or a server.
var validName = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// New checks the configuration and that the backend exists.
func New(ctx context.Context, cfg Config) (*Dispatcher, error) {
	if cfg.ClonePrefix == "" {
		cfg.ClonePrefix = "mitosis-"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	switch {
	case cfg.Socket == "":
		return nil, errors.New("haproxy: socket: required (the runtime API socket, level admin)")
	case !validName.MatchString(cfg.Backend):
		return nil, fmt.Errorf("haproxy: backend %q: not a valid HAProxy backend name", cfg.Backend)
	case !validName.MatchString(cfg.ClonePrefix):
		return nil, fmt.Errorf("haproxy: clone_prefix %q: not valid in a server name", cfg.ClonePrefix)
	case strings.ContainsAny(cfg.ServerOptions, "\n;"):
		return nil, errors.New("haproxy: server_options: must not hold a newline or a semicolon")
	}
	for _, s := range cfg.Servers {
		if !validName.MatchString(s) {
			return nil, fmt.Errorf("haproxy: servers: %q is not a valid server name", s)
		}
	}
	d := &Dispatcher{cfg: cfg, api: runtimeAPI{socket: cfg.Socket, timeout: cfg.Timeout}}
	out, err := d.api.expect(ctx, "show backend", nil, "# name")
	if err != nil {
		return nil, err
	}
	backends := strings.Fields(strings.TrimPrefix(out, "# name"))
	if !slices.Contains(backends, cfg.Backend) {
		return nil, fmt.Errorf("haproxy: backend %q not found (HAProxy has: %s)", cfg.Backend, strings.Join(backends, ", "))
	}
	return d, nil
}

// server checks that node is a server this dispatcher may touch and
// returns its "backend/server" name.
func (d *Dispatcher) server(node string) (string, error) {
	if !validName.MatchString(node) {
		return "", fmt.Errorf("haproxy: %q is not a valid server name", node)
	}
	if !slices.Contains(d.cfg.Servers, node) && !strings.HasPrefix(node, d.cfg.ClonePrefix) && !plan.IsCloneOf(d.cfg.Cluster, node) {
		return "", fmt.Errorf("haproxy: refusing to touch server %s/%s: it is neither one of the configured servers nor named %s… nor as a clone of cluster %q (%s)", d.cfg.Backend, node, d.cfg.ClonePrefix, d.cfg.Cluster, plan.FormatCloneName(d.cfg.Cluster, 1))
	}
	return d.cfg.Backend + "/" + node, nil
}

// Drain stops sending the node new work; its current sessions go on.
func (d *Dispatcher) Drain(ctx context.Context, node string) error {
	srv, err := d.server(node)
	if err != nil {
		return err
	}
	cur, found, err := d.state(ctx, node)
	if err != nil {
		return fmt.Errorf("draining %s: %w", srv, err)
	}
	if found && cur.agentState&chkEnabled != 0 {
		if _, err := d.api.expect(ctx, "disable agent "+srv, []string{""}); err != nil {
			return fmt.Errorf("draining %s: %w", srv, err)
		}
	}
	// An absent server is an error (HAProxy's "No such server."), not a
	// success: it most likely means node ids and server names disagree,
	// and the real server would go on taking work.
	if _, err := d.api.expect(ctx, "set server "+srv+" state drain", []string{""}); err != nil {
		return fmt.Errorf("draining %s: %w", srv, err)
	}
	return nil
}

// Attach adds the node at address (IP:port) if it is absent, moves it
// there if it is elsewhere, and sends it work.
func (d *Dispatcher) Attach(ctx context.Context, node, address string) error {
	srv, err := d.server(node)
	if err != nil {
		return err
	}
	ip, port, err := splitAddress(address)
	if err != nil {
		return fmt.Errorf("attaching %s: %w", srv, err)
	}
	cur, found, err := d.state(ctx, node)
	if err != nil {
		return fmt.Errorf("attaching %s: %w", srv, err)
	}
	switch {
	case !found:
		cmd := "add server " + srv + " " + net.JoinHostPort(ip, port)
		if d.cfg.ServerOptions != "" {
			cmd += " " + d.cfg.ServerOptions
		}
		if _, err := d.api.expect(ctx, cmd, []string{"New server registered."}); err != nil {
			return fmt.Errorf("attaching %s: %w", srv, err)
		}
		// Read it back for its checks, which HAProxy adds switched off.
		if cur, found, err = d.state(ctx, node); err == nil && !found {
			err = errors.New("absent right after add server")
		}
		if err != nil {
			return fmt.Errorf("attaching %s: %w", srv, err)
		}
		if err := d.renewCookies(ctx); err != nil {
			return fmt.Errorf("attaching %s: %w", srv, err)
		}
	case cur.addr != ip || cur.port != port:
		if _, err := d.api.expect(ctx, "set server "+srv+" addr "+ip+" port "+port, nil, "IP changed", "port changed", "no need to change"); err != nil {
			return fmt.Errorf("attaching %s: %w", srv, err)
		}
		if err := d.renewCookies(ctx); err != nil { // a dynamic cookie follows the address
			return fmt.Errorf("attaching %s: %w", srv, err)
		}
	}
	// A check that is configured but off (a dynamic server's, or an agent
	// turned off by Drain) is turned on: a server sent work is checked.
	if cur.checkState&(chkConfigured|chkEnabled) == chkConfigured {
		if _, err := d.api.expect(ctx, "enable health "+srv, []string{""}); err != nil {
			return fmt.Errorf("attaching %s: %w", srv, err)
		}
	}
	if cur.agentState&(chkConfigured|chkEnabled) == chkConfigured {
		if _, err := d.api.expect(ctx, "enable agent "+srv, []string{""}); err != nil {
			return fmt.Errorf("attaching %s: %w", srv, err)
		}
	}
	if _, err := d.api.expect(ctx, "set server "+srv+" state ready", []string{""}); err != nil {
		return fmt.Errorf("attaching %s: %w", srv, err)
	}
	return nil
}

// renewCookies gives servers added at run time their dynamic cookie.
func (d *Dispatcher) renewCookies(ctx context.Context) error {
	if !d.cfg.DynamicCookies {
		return nil
	}
	_, err := d.api.expect(ctx, "enable dynamic-cookie backend "+d.cfg.Backend, []string{""})
	return err
}

// Remove takes the node out of the backend: into maintenance, then
// deleted. Removing an absent node is success. HAProxy refuses to delete
// a server that still has connections; Remove then fails and is retried.
func (d *Dispatcher) Remove(ctx context.Context, node string) error {
	srv, err := d.server(node)
	if err != nil {
		return err
	}
	cur, found, err := d.state(ctx, node)
	if err != nil {
		return fmt.Errorf("removing %s: %w", srv, err)
	}
	if !found {
		return nil
	}
	// HAProxy's advice: an agent could take the server out of maintenance.
	if cur.agentState&chkEnabled != 0 {
		if _, err := d.api.expect(ctx, "disable agent "+srv, []string{""}); err != nil && !errors.Is(err, errNoSuchServer) {
			return fmt.Errorf("removing %s: %w", srv, err)
		}
	}
	// The "No such server" answers below are a concurrent removal.
	if _, err := d.api.expect(ctx, "set server "+srv+" state maint", []string{""}); err != nil {
		if errors.Is(err, errNoSuchServer) {
			return nil
		}
		return fmt.Errorf("removing %s: %w", srv, err)
	}
	if _, err := d.api.expect(ctx, "del server "+srv, []string{"Server deleted."}); err != nil {
		if errors.Is(err, errNoSuchServer) {
			return nil
		}
		return fmt.Errorf("removing %s: %w", srv, err)
	}
	return nil
}

// Sessions returns the node's current sessions (HAProxy's scur); an
// absent node has none.
func (d *Dispatcher) Sessions(ctx context.Context, node string) (int, error) {
	srv, err := d.server(node)
	if err != nil {
		return 0, err
	}
	out, err := d.api.expect(ctx, "show stat "+d.cfg.Backend+" 4 -1", nil, "# pxname")
	if err != nil {
		return 0, fmt.Errorf("counting the sessions of %s: %w", srv, err)
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# "))).ReadAll()
	if err != nil || len(rows) == 0 {
		return 0, fmt.Errorf("counting the sessions of %s: unreadable show stat answer: %v", srv, err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, c := range []string{"pxname", "svname", "scur"} {
		if _, ok := col[c]; !ok {
			return 0, fmt.Errorf("counting the sessions of %s: show stat has no column %s", srv, c)
		}
	}
	px, sv, scur := col["pxname"], col["svname"], col["scur"]
	for _, r := range rows[1:] {
		if len(r) > max(px, sv, scur) && r[px] == d.cfg.Backend && r[sv] == node {
			n, err := strconv.Atoi(r[scur])
			if err != nil {
				return 0, fmt.Errorf("counting the sessions of %s: scur %q", srv, r[scur])
			}
			return n, nil
		}
	}
	return 0, nil
}

// serverState is a server's line of "show servers state".
type serverState struct {
	addr, port string
	opState    int // 0 stopped, 2 running
	adminState int // bit 0: forced maintenance; bit 3: drain
	checkState int // chk* bits of its health check
	agentState int // chk* bits of its agent check
}

// Bits of srv_check_state and srv_agent_state (HAProxy's CHK_ST_*).
const (
	chkConfigured = 0x2
	chkEnabled    = 0x4
)

// state reads one server's state; found is false when it is absent.
func (d *Dispatcher) state(ctx context.Context, node string) (serverState, bool, error) {
	cmd := "show servers state " + d.cfg.Backend
	// Format 1: a version line, a "# " header naming the columns, then one
	// line per server. Anything else (an error, a format we do not know)
	// is refused rather than guessed at.
	out, err := d.api.expect(ctx, cmd, nil, "1\n# ")
	if err != nil {
		return serverState{}, false, err
	}
	lines := strings.Split(out, "\n")
	header := strings.Fields(strings.TrimPrefix(lines[1], "# "))
	idx := map[string]int{}
	for i, h := range header {
		idx[h] = i
	}
	cols := []string{"be_name", "srv_name", "srv_addr", "srv_port", "srv_op_state", "srv_admin_state", "srv_check_state", "srv_agent_state"}
	for _, c := range cols {
		if _, ok := idx[c]; !ok {
			return serverState{}, false, fmt.Errorf("haproxy: %q: no column %s in %q", cmd, c, lines[1])
		}
	}
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) != len(header) {
			return serverState{}, false, fmt.Errorf("haproxy: %q: unreadable line %q", cmd, l)
		}
		if f[idx["be_name"]] != d.cfg.Backend || f[idx["srv_name"]] != node {
			continue
		}
		st := serverState{addr: f[idx["srv_addr"]], port: f[idx["srv_port"]]}
		for _, v := range []struct {
			col string
			to  *int
		}{{"srv_op_state", &st.opState}, {"srv_admin_state", &st.adminState}, {"srv_check_state", &st.checkState}, {"srv_agent_state", &st.agentState}} {
			if *v.to, err = strconv.Atoi(f[idx[v.col]]); err != nil {
				return serverState{}, false, fmt.Errorf("haproxy: %q: %s of %s is %q", cmd, v.col, node, f[idx[v.col]])
			}
		}
		return st, true, nil
	}
	return serverState{}, false, nil
}

// splitAddress accepts an IP literal and a port: dynamic servers with a
// host name would need HAProxy resolvers, and a name is not what a clone
// is given. The port is decimal digits only (no sign, no service name)
// from 1 to 65535, returned without leading zeros, as HAProxy shows it:
// "080" is port 80, and a re-attach with it is not a move.
func splitAddress(address string) (ip, port string, err error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", "", fmt.Errorf("address %q: %w", address, err)
	}
	if net.ParseIP(host) == nil {
		return "", "", fmt.Errorf("address %q: the host must be an IP address", address)
	}
	bad := fmt.Errorf("address %q: bad port: want decimal digits from 1 to 65535", address)
	if port == "" || strings.Trim(port, "0123456789") != "" {
		return "", "", bad
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", "", bad
	}
	return host, strconv.Itoa(p), nil
}
