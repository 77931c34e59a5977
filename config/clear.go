package config

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Loopback reports whether addr (host:port) is reachable from this
// machine only: 127.0.0.0/8, ::1 or localhost. Anything else, an empty
// host or 0.0.0.0 included, is reachable from the network.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkInTheClear refuses raft without tls on an address the network
// reaches, unless raft.insecure says so: raft's peers take each other's
// commands unauthenticated, so anyone who reaches the port could rewrite
// the registry.
func (r *RaftConfig) checkInTheClear() error {
	if r.TLS != nil {
		if r.Insecure {
			return errors.New("raft.insecure: true, but raft.tls is given: raft runs over TLS; remove raft.insecure")
		}
		return nil
	}
	if r.Insecure {
		return nil
	}
	for _, a := range []struct{ key, addr string }{{"raft.bind", r.Bind}, {"raft.advertise", r.Advertise}} {
		if a.addr != "" && !Loopback(a.addr) {
			return fmt.Errorf("%s: %s is reachable from the network, and raft has no tls: anyone who reaches it could join and rewrite the registry; give raft.tls (docs/raft.md), or raft.insecure: true to run in the clear anyway", a.key, a.addr)
		}
	}
	return nil
}

// CheckListen refuses the API without api.tls on a --listen address the
// network reaches, unless api.insecure or the --insecure flag says so:
// the bearer tokens, and what they allow, would cross the network in the
// clear.
func CheckListen(listen string, api APIConfig, insecureFlag bool) error {
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return fmt.Errorf("--listen: %q is not host:port", listen)
	}
	if api.TLS != nil || api.Insecure || insecureFlag || Loopback(listen) {
		return nil
	}
	return fmt.Errorf("--listen: %s is reachable from the network, and the API has no tls: its bearer tokens would cross the network in the clear; give api.tls (docs/api.md), or api.insecure: true (or --insecure) to serve in the clear anyway", listen)
}

// InTheClear is what the file (and the --listen given) leave unencrypted
// on the network by the operator's say-so (raft.insecure, api.insecure,
// --insecure): the agent warns of each on every start.
func (c File) InTheClear(listen string) []string {
	var out []string
	if c.Raft != nil && c.Raft.TLS == nil && (!Loopback(c.Raft.Bind) || c.Raft.Advertise != "" && !Loopback(c.Raft.Advertise)) {
		out = append(out, fmt.Sprintf("raft runs without TLS on %s (raft.insecure): anyone who reaches it can join the cluster and rewrite the registry", c.Raft.Bind))
	}
	if c.API.TLS == nil && !Loopback(listen) {
		out = append(out, fmt.Sprintf("the API is served without TLS on %s (api.insecure or --insecure): its bearer tokens cross the network in the clear", listen))
	}
	return out
}

// keyLine prefixes err with the line of the key it begins with
// ("raft.bind: …" → "line 9: raft.bind: …") when the file has that key,
// so that a value refused after decoding is found like one the decoder
// refuses.
func keyLine(data []byte, err error) error {
	key, _, ok := strings.Cut(err.Error(), ": ")
	if !ok || strings.ContainsAny(key, " []()") {
		return err
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return err
	}
	n := doc.Content[0]
	line := 0
	for _, part := range strings.Split(key, ".") {
		if n.Kind != yaml.MappingNode {
			return err
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line, next = n.Content[i].Line, n.Content[i+1]
			}
		}
		if next == nil {
			return err
		}
		n = next
	}
	return fmt.Errorf("line %d: %w", line, err)
}
