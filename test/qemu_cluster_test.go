package test

// Live clones of real VMs going into service. QEMU guests (TCG) run the
// reference node on a private guest network: a bridge with DHCP inside a
// network namespace of the test's own, where the root libvirtd (and so
// its guests' taps), HAProxy, Prometheus, the agent and the test's
// clients all run; the machine's own namespace never carries the guests'
// traffic.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	lv "github.com/digitalocean/go-libvirt"

	"github.com/mitosis-autoscaler/mitosis/agent/client"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy"
	"github.com/mitosis-autoscaler/mitosis/dispatcher/haproxy/haproxytest"
	"github.com/mitosis-autoscaler/mitosis/hypervisor"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/libvirt"
	"github.com/mitosis-autoscaler/mitosis/hypervisor/libvirt/libvirttest"
	"github.com/mitosis-autoscaler/mitosis/internal/netnstest"
	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/node"
)

// The guests' network, inside the test's namespace.
const (
	guestBridge = "mbr0"
	bridgeCIDR  = "10.77.0.1/24"
	firstLease  = "10.77.0.10"
	lastLease   = "10.77.0.99"
	// qemuHost is the host every VM of the test's libvirtd reports.
	qemuHost = "qemu-1"
)

// qemuLab is the test's libvirt host and guest network: a root libvirtd
// in system mode, the bridge and its DHCP server, and the template guest,
// booted and leased.
type qemuLab struct {
	d      *libvirttest.Daemon
	raw    *lv.Libvirt
	dhcp   *netnstest.DHCP
	tmpl   libvirttest.NodeGuest
	tmplIP string
	watch  *addressWatch
}

func startQEMULab(t *testing.T, name string) *qemuLab {
	t.Helper()
	netnstest.Bridge(t, guestBridge, bridgeCIDR)
	lab := &qemuLab{dhcp: netnstest.ServeDHCP(t, guestBridge, firstLease, lastLease)}
	lab.watch = watchAddresses(t, lab.dhcp)
	lab.d = libvirttest.StartSystem(t)
	lab.raw = lab.d.Connect(t, "qemu:///system")
	lab.tmpl = libvirttest.PrepareNodeGuest(t, lab.d, name, guestBridge, built(t, buildStaticDemoNode), token)
	began := time.Now()
	lab.tmplIP = lab.tmpl.Boot(t, lab.raw)
	waitHTTP(t, "http://"+net.JoinHostPort(lab.tmplIP, "8080")+"/metrics", 30*time.Second)
	t.Logf("template %s booted and serving at %s:8080 in %s", name, lab.tmplIP, time.Since(began).Round(100*time.Millisecond))
	return lab
}

// libvirtSection is the agent's (or a test's) libvirt configuration for
// the lab's daemon.
func (lab *qemuLab) libvirtSection(mode string) string {
	return fmt.Sprintf(`{uri: %q, image_dir: %q, host: %s, address_source: agent, clone_mode: %s}`,
		lab.d.QEMUURI(), lab.tmpl.Images, qemuHost, mode)
}

// domains are the names of the daemon's domains.
func (lab *qemuLab) domains(t *testing.T) []string {
	t.Helper()
	doms, _, err := lab.raw.ConnectListAllDomains(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range doms {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return names
}

// macs are the MACs of a domain's NICs.
func (lab *qemuLab) macs(t *testing.T, name string) []string {
	t.Helper()
	return libvirttest.MACs(t, lab.raw, name)
}

// hostname is the guest's host name, as its guest agent says.
func (lab *qemuLab) hostname(name string) (string, error) {
	dom, err := lab.raw.DomainLookupByName(name)
	if err != nil {
		return "", err
	}
	return lab.raw.DomainGetHostname(dom, lv.DomainGetHostnameAgent)
}

// addressWatch samples, every 50 ms, who answers on which IP of the
// guest network: the host's neighbour table on the bridge and the DHCP
// leases. At no moment may two guests answer on one IP: every IP it has
// seen must have had one MAC only.
type addressWatch struct {
	mu      sync.Mutex
	macs    map[string]map[string]string // ip → mac → where it was first seen
	samples int
	stop    func()
}

func watchAddresses(t *testing.T, dhcp *netnstest.DHCP) *addressWatch {
	w := &addressWatch{macs: map[string]map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			w.sample(dhcp)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	w.stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(w.stop)
	return w
}

func (w *addressWatch) sample(dhcp *netnstest.DHCP) {
	seen := map[string]string{} // ip → mac, this sample
	if ns, err := netnstest.Neighbours(guestBridge); err == nil {
		for _, n := range ns {
			seen[n.IP+" neigh"] = n.MAC
		}
	}
	if ls, err := dhcp.Leases(); err == nil {
		for _, l := range ls {
			seen[l.IP+" lease"] = l.MAC
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples++
	at := time.Now().Format("15:04:05.000")
	for k, mac := range seen {
		ip, source, _ := strings.Cut(k, " ")
		if w.macs[ip] == nil {
			w.macs[ip] = map[string]string{}
		}
		if _, ok := w.macs[ip][mac]; !ok {
			w.macs[ip][mac] = source + " at " + at
		}
	}
}

// conflicts are the IPs seen with more than one MAC, with where.
func (w *addressWatch) conflicts() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for ip, macs := range w.macs {
		if len(macs) > 1 {
			out = append(out, fmt.Sprintf("%s: %v", ip, macs))
		}
	}
	sort.Strings(out)
	return out
}

// ips are the IPs a MAC was seen answering on.
func (w *addressWatch) ips(mac string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for ip, macs := range w.macs {
		if _, ok := macs[strings.ToLower(mac)]; ok {
			out = append(out, ip)
		}
	}
	sort.Strings(out)
	return out
}

// tally counts a load's answers by node id, and its failures (a
// transport error, or any status but 200) by what they were.
func tally(hits []hit) (served, failed map[string]int) {
	served, failed = map[string]int{}, map[string]int{}
	for _, h := range hits {
		if h.err != "" {
			failed[errorClass(h.err)]++
		} else {
			served[h.node]++
		}
	}
	return served, failed
}

// latencies are the quantiles of the answered requests' times.
func latencies(hits []hit) (p50, p99, worst time.Duration) {
	var ds []time.Duration
	for _, h := range hits {
		if h.err == "" {
			ds = append(ds, h.end.Sub(h.start))
		}
	}
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)*99/100], ds[len(ds)-1]
}

func errorClass(err string) string {
	if i := strings.LastIndex(err, ": "); i >= 0 {
		return err[i+2:]
	}
	return err
}

// TestLiveClonesOfQEMUGuestsGoIntoService is issue 14's acceptance: the
// agent, from its file alone, grows a cluster of QEMU guests running the
// reference node from one VM to three by live clone, on utilization a
// real Prometheus scrapes from the guests, with the default policy; the
// clones serve through HAProxy, each on an address of its own; with no
// load it contracts back to one. Then the warm capacity of a live clone
// is measured beside a cold one (the table it prints).
func TestLiveClonesOfQEMUGuestsGoIntoService(t *testing.T) {
	libvirttest.Kernel(t) // fetched outside: the namespace has no way out
	promBin := testenv.Binary(t, "prometheus")
	if !netnstest.Enter(t) {
		return
	}
	lab := startQEMULab(t, "web-1")
	mitosis := built(t, buildMitosis)
	dir := t.TempDir()
	tokenFile := tokenIn(t, dir)

	lb := haproxytest.Start(t, fmt.Sprintf("server web-1 %s:8080 cookie web-1", lab.tmplIP))

	// The agent serves its nodes to Prometheus (http_sd), which scrapes
	// each demo-node in its guest over the bridge.
	agentAddr := testenv.FreeAddr(t)
	promDir := filepath.Join(dir, "prometheus")
	if err := os.Mkdir(promDir, 0o700); err != nil {
		t.Fatal(err)
	}
	promAddr := testenv.FreeAddr(t)
	promConf := filepath.Join(promDir, "prometheus.yml")
	if err := os.WriteFile(promConf, fmt.Appendf(nil, `global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: app
    http_sd_configs:
      - url: http://%s/v1/targets
        refresh_interval: 1s
        authorization: {type: Bearer, credentials_file: %s}
`, agentAddr, tokenFile), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := start(t, "prometheus", promBin, "--config.file="+promConf, "--storage.tsdb.path="+filepath.Join(promDir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	waitHTTP(t, "http://"+promAddr+"/-/ready", 10*time.Second)

	// Utilization: each node's requests a second over a capacity of 10.
	conf := filepath.Join(dir, "mitosis.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `tick: 1s
clusters:
  - name: web
    min: 1
    max: 3
    scalable_roles: [app]
    hosts: [{name: %s}]
    cooldown: {up: 1s, down: 1s}
    stabilization: 3s
    finalize: {deadline: 2m}
nodes: [{cluster: web, id: web-1, role: app, address: "%s:8080", host: %s, vm: web-1}]
metrics:
  url: http://%s
  timeout: 2s
  scrape_interval: 1s
  staleness: 5s
  queries:
    - name: utilization
      query: sum by (node) (rate(demo_node_requests_total[4s])) / 10
      per_node: true
      node_label: node
      match: id
hypervisor:
  kind: libvirt
  libvirt: %s
dispatcher:
  kind: haproxy
  haproxy: {socket: %q, backend: app, servers: [web-1], server_options: "pool-purge-delay 200ms", dynamic_cookies: true}
node_api: {token_file: %q, timeout: 2s, port: 8080}
`, qemuHost, lab.tmplIP, qemuHost, promAddr, lab.libvirtSection("live"), lb.Socket, tokenFile), 0o600); err != nil {
		t.Fatal(err)
	}
	agentProc := start(t, "mitosis agent", mitosis, "agent", "--config", conf, "--token-file", tokenFile, "--listen", agentAddr, "--log-level", "info")
	waitHTTP(t, "http://"+agentAddr+"/-/healthy", 20*time.Second)
	api, err := client.New("http://"+agentAddr, token, client.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	await := func(what string, within time.Duration, ok func(clusterView) bool) clusterView {
		t.Helper()
		return awaitCluster(t, what, within, func() clusterView { return viewCluster(t, api, lb, func() []string { return lab.domains(t) }) }, ok,
			func() string { return "agent log:\n" + tailString(agentProc.output(), 6000) })
	}
	await("one node at first", 30*time.Second, func(c clusterView) bool { return len(c.ids) == 1 })

	// Load through HAProxy: three clients, five requests a session.
	began := time.Now()
	ld := startLoad(t, lb.Frontend, 3, 5)
	grown := await("grown to its max of 3 by live clones", 4*time.Minute, func(c clusterView) bool { return len(c.ids) == 3 })
	t.Logf("grown to %v in %s", grown.ids, time.Since(began).Round(time.Second))
	time.Sleep(3 * time.Second) // the clones take their share
	ld.halt()
	served, failed := tally(ld.snapshot())
	p50, p99, worst := latencies(ld.snapshot())
	t.Logf("requests served by node: %v; failed: %v; latency p50 %s, p99 %s, max %s", served, failed,
		p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond))
	if len(failed) > 0 {
		t.Errorf("failed client requests while growing: %v", failed)
	}

	// Every clone: a live clone of web-1, serving, on an address of its
	// own (its lease, never another guest's), its node id its host name.
	tmplMAC := lab.macs(t, "web-1")
	addrs := map[string]string{}
	for _, n := range grown.nodes {
		host, _, _ := net.SplitHostPort(n.Address)
		if other, dup := addrs[host]; dup {
			t.Errorf("%s and %s share the address %s", n.ID, other, host)
		}
		addrs[host] = n.ID
		if n.ID == "web-1" {
			continue
		}
		if n.Parent == "" || served[n.ID] == 0 {
			t.Errorf("clone %s (parent %q) served %d requests", n.ID, n.Parent, served[n.ID])
		}
		if host == lab.tmplIP {
			t.Errorf("clone %s is registered at its template's address %s", n.ID, host)
		}
		macs := lab.macs(t, n.VM)
		if len(macs) != 1 || slices.Equal(macs, tmplMAC) {
			t.Errorf("clone %s has MACs %v (template %v)", n.ID, macs, tmplMAC)
		} else if ips := lab.watch.ips(macs[0]); !slices.Equal(ips, []string{host}) {
			t.Errorf("clone %s (%s) was seen answering on %v, want its own %s only", n.ID, macs[0], ips, host)
		}
		if h, err := lab.hostname(n.VM); err != nil || h != n.ID {
			t.Errorf("clone %s's host name is %q (%v), want its node id", n.ID, h, err)
		}
	}

	// No load: back to web-1 alone, the clones' VMs and files gone.
	shrunk := await("shrunk back to web-1", 3*time.Minute, func(c clusterView) bool { return len(c.ids) == 1 })
	if !slices.Equal(shrunk.ids, []string{"web-1"}) {
		t.Errorf("the node left is %v, want web-1", shrunk.ids)
	}
	allDone(t, api, "web", 2, 2)
	agentProc.stop()
	prom.stop() // nothing else scrapes the template while it is measured
	if left := lab.leftovers(t); len(left) > 0 {
		t.Errorf("left after the contractions: %v", left)
	}

	// A clone whose guest does not take its own MACs in time never
	// reaches the network: Clone fails and leaves nothing behind.
	impatient, err := libvirt.New(t.Context(), libvirt.Config{URI: lab.d.QEMUURI(), ImageDir: lab.tmpl.Images, Host: qemuHost,
		AddressSource: libvirt.AddressAgent, IdentityWait: new(100 * time.Millisecond), Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = impatient.Clone(t.Context(), hypervisor.CloneRequest{Operation: "impatient", Name: "mitosis-impatient", Template: lab.tmpl.Name, Fence: 1})
	if err == nil || !strings.Contains(err.Error(), "did not take its own MACs within identity_wait") {
		t.Errorf("a clone that cannot take its identity in 100 ms: %v", err)
	}
	_ = impatient.Close()
	if left := lab.leftovers(t); len(left) > 0 {
		t.Errorf("left after a clone that failed to take its identity: %v", left)
	}

	// Warm capacity: a live clone beside a cold one.
	rows := warmCapacity(t, lab, lb)
	t.Logf("warm capacity (each new VM and the template under one closed-loop client each, at once, their vCPUs sharing one core):\n%s", warmTable(rows))
	for _, r := range rows {
		t.Logf("answers a second in the %s's first %s: %v (the template's: %v)", r.vm, warmWindow, r.perSecond, r.templatePerSecond)
	}
	if live := rows[0]; live.share() < 0.9 {
		t.Errorf("the live clone served %.0f %% of its template's requests in its first %s (want at least 90 %%)", 100*live.share(), warmWindow)
	}
	if left := lab.leftovers(t); len(left) > 0 {
		t.Errorf("left after the warm-capacity clones: %v", left)
	}
	if c := lab.watch.conflicts(); len(c) > 0 {
		t.Errorf("IPs two guests answered on (neighbour table or leases): %v", c)
	}
}

// leftovers are the clones' domains, files in the image directory and
// leases still there.
func (lab *qemuLab) leftovers(t *testing.T) []string {
	t.Helper()
	var left []string
	for _, d := range lab.domains(t) {
		if d != lab.tmpl.Name {
			left = append(left, "domain "+d)
		}
	}
	entries, err := os.ReadDir(lab.tmpl.Images)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), lab.tmpl.Name+".") {
			left = append(left, "file "+e.Name())
		}
	}
	tmplMACs := lab.macs(t, lab.tmpl.Name)
	leases, err := lab.dhcp.Leases()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases {
		if !slices.Contains(tmplMACs, l.MAC) {
			left = append(left, fmt.Sprintf("lease %s of %s", l.IP, l.MAC))
		}
	}
	return left
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// warmKeys is the working set of the warm-capacity measurement: within a
// node's cache (demo-node's default holds 1,000 values), so that a warm
// node serves them all from it and a cold one computes each the first
// time (a miss costs 11 times a hit). Small, because the template must
// compute each once first, under TCG.
const warmKeys = 200

// warmWindow is how long after joining a new node is measured.
const warmWindow = 15 * time.Second

// warmRow is one line of the warm-capacity table.
type warmRow struct {
	vm                   string
	cloneCall, api, join time.Duration // from the clone call
	served, hits         int           // in the window
	templateServed       int           // the template's, in the same window
	// perSecond are the answers in each second of the window, the new
	// VM's and the template's.
	perSecond, templatePerSecond []int
}

func (r warmRow) rate() float64     { return float64(r.served) / warmWindow.Seconds() }
func (r warmRow) hitRatio() float64 { return float64(r.hits) / float64(max(r.served, 1)) }
func (r warmRow) share() float64    { return float64(r.served) / float64(max(r.templateServed, 1)) }

// closedLoop is one client sending requests for the working set's keys
// to addr, one after the other, until ctx ends: it counts the answers of
// each second and the cache hits among them.
func closedLoop(ctx context.Context, addr string, seed int) (perSecond []int, hits int) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	rnd := rand.New(rand.NewPCG(uint64(seed), 1))
	perSecond = make([]int, int(warmWindow/time.Second))
	began := time.Now()
	for ctx.Err() == nil {
		resp, err := c.Get(fmt.Sprintf("http://%s/work?key=w%d", addr, rnd.IntN(warmKeys)))
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && ctx.Err() == nil {
			perSecond[min(int(time.Since(began)/time.Second), len(perSecond)-1)]++
			if resp.Header.Get("X-Cache") == "hit" {
				hits++
			}
		}
	}
	return perSecond, hits
}

// measure runs, for the window, one closed-loop client on the new VM at
// addr and another on the template, at once: each VM alone under its
// client, both through the same seconds of the machine, whose speed
// varies (a shared host's), their vCPUs sharing one core fairly (pinned
// to it) while the clients and the rest run on the other.
func (r *warmRow) measure(ctx context.Context, addr, template string) {
	ctx, cancel := context.WithTimeout(ctx, warmWindow)
	defer cancel()
	var tmplPerSecond []int
	var wg sync.WaitGroup
	wg.Go(func() { r.perSecond, r.hits = closedLoop(ctx, addr, 1) })
	wg.Go(func() { tmplPerSecond, _ = closedLoop(ctx, template, 2) })
	wg.Wait()
	for i := range r.perSecond {
		r.served += r.perSecond[i]
		r.templateServed += tmplPerSecond[i]
	}
	r.templatePerSecond = tmplPerSecond
}

// pin puts the domain's only vCPU on host core cpu.
func (lab *qemuLab) pin(t *testing.T, name string, cpu uint) {
	t.Helper()
	dom, err := lab.raw.DomainLookupByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.raw.DomainPinVcpu(dom, 0, []byte{1 << cpu}); err != nil {
		t.Fatalf("pinning %s to core %d: %v", name, cpu, err)
	}
}

// warmCapacity makes a live clone of the lab's template, then a cold one
// (booted from a copy of its disk), puts each in service as the expand
// saga does (its node API answering at its own address, finalized,
// attached to HAProxy), measures its first seconds in service, and
// destroys it.
func warmCapacity(t *testing.T, lab *qemuLab, lb *haproxytest.Instance) []warmRow {
	t.Helper()
	ctx := t.Context()
	nodes := node.NewClient(token, node.ClientOptions{Timeout: 5 * time.Second, Retries: -1})
	disp, err := haproxy.New(ctx, haproxy.Config{Socket: lb.Socket, Backend: "app", Servers: []string{lab.tmpl.Name}, Cluster: "web", DynamicCookies: true})
	if err != nil {
		t.Fatal(err)
	}
	template := net.JoinHostPort(lab.tmplIP, "8080")
	// The template has served the working set: its cache holds it.
	began := time.Now()
	for i := range warmKeys {
		resp, err := http.Get(fmt.Sprintf("http://%s/work?key=w%d", template, i))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	t.Logf("the template computed the working set of %d keys in %s", warmKeys, time.Since(began).Round(100*time.Millisecond))
	lab.pin(t, lab.tmpl.Name, 1)

	var rows []warmRow
	for _, mode := range []string{libvirt.CloneModeLive, libvirt.CloneModeCold} {
		cfg := libvirt.Config{URI: lab.d.QEMUURI(), ImageDir: lab.tmpl.Images, Host: qemuHost, CloneMode: mode,
			AddressSource: libvirt.AddressAgent, AddressWait: new(time.Duration(0)), Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
		hv, err := libvirt.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		op := "warm-" + mode
		row := warmRow{vm: mode + " clone"}
		req := hypervisor.CloneRequest{Operation: op, Name: "mitosis-" + op, Template: lab.tmpl.Name, Host: qemuHost, Fence: 1}
		t.Cleanup(func() { _ = hv.Destroy(context.Background(), req.Name); _ = hv.Close() })

		// A live clone is made of a settled template, as the saga does.
		if mode == libvirt.CloneModeLive {
			if _, err := nodes.Prepare(ctx, template, node.PrepareRequest{Operation: op, Deadline: time.Now().Add(30 * time.Second), Mode: node.PrepareSuspend}); err != nil {
				t.Fatal(err)
			}
			for st, _ := nodes.Status(ctx, template); st.State != node.StatePrepared; st, _ = nodes.Status(ctx, template) {
				time.Sleep(20 * time.Millisecond)
			}
		}
		began := time.Now()
		if _, err := hv.Clone(ctx, req); err != nil {
			t.Fatal(err)
		}
		row.cloneCall = time.Since(began)
		if mode == libvirt.CloneModeLive {
			if err := nodes.Resume(ctx, template, op); err != nil {
				t.Fatal(err)
			}
		}
		var addr string
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			if vm, err := hv.Lookup(ctx, req.Name); err == nil && vm.Address != "" {
				addr = net.JoinHostPort(vm.Address, "8080")
				if _, err := nodes.Status(ctx, addr); err == nil {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the %s clone's node API did not answer within 2 min", mode)
			}
		}
		row.api = time.Since(began)
		if err := nodes.Finalize(ctx, addr, node.FinalizeRequest{Operation: op, ID: req.Name, Address: addr}); err != nil {
			t.Fatalf("finalizing the %s clone: %v", mode, err)
		}
		if err := disp.Attach(ctx, req.Name, addr); err != nil {
			t.Fatal(err)
		}
		row.join = time.Since(began)
		lab.pin(t, req.Name, 1)
		row.measure(ctx, addr, template)
		rows = append(rows, row)
		if err := disp.Remove(ctx, req.Name); err != nil {
			t.Error(err)
		}
		if err := hv.Destroy(ctx, req.Name); err != nil {
			t.Error(err)
		}
	}
	return rows
}

// warmTable renders the rows as the table of docs/hypervisors.md.
func warmTable(rows []warmRow) string {
	var b strings.Builder
	b.WriteString("| VM | clone call | → node API answers | → joined HAProxy | cache hits, first 15 s | requests/s, first 15 s | share of the template's |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.1f s | %.1f s | %.1f s | %.0f %% | %.0f (template %.0f) | %.0f %% |\n",
			r.vm, r.cloneCall.Seconds(), r.api.Seconds(), r.join.Seconds(), 100*r.hitRatio(), r.rate(),
			float64(r.templateServed)/warmWindow.Seconds(), 100*r.share())
	}
	return b.String()
}
