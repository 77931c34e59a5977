package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mitosis-autoscaler/mitosis/internal/testenv"
	"github.com/mitosis-autoscaler/mitosis/plan"
)

// dashboardWorld is a simulated world that grows with its load and never
// shrinks during the test (a day of stabilization), so a clone the test
// makes stays in the tree; %s is the read-only token's file.
const dashboardWorld = `
tick: 15s
clusters:
  - name: web
    min: 2
    max: 40
    scalable_roles: [app]
    cooldown: {up: 30s, down: 24h}
    stabilization: 24h
    hosts:
      - {name: esx-1, capacity: 20}
      - {name: esx-2, capacity: 20}
      - {name: esx-3, capacity: 20}
world: {kind: sim, speed: 60, workload: diurnal-spike, duration: 168h, seed: 2}
simulation:
  synthetic: {base_rps: 150, peak_rps: 600, spike_every: 25m, spike_rise: 2m, spike_decay: 6m}
api:
  tokens:
    - {name: viewer, role: read, file: %s}
`

// TestDashboardShowsACloneMadeThroughTheAPI is issue 7's dashboard
// acceptance: the real agent on a simulated world serves the dashboard;
// headless Chromium opens it with an admin token and shows the clone
// lineage; a clone made through the API (not the page) appears in the
// operations timeline and in the tree under its template; with a read
// token the page offers no action. A screenshot is kept in
// build/artifacts/dashboard.png.
func TestDashboardShowsACloneMadeThroughTheAPI(t *testing.T) {
	chromium := testenv.Binary(t, "chromium")
	mitosis, err := buildMitosis()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const adminToken, readToken = "dashboard-admin-token-7c41", "dashboard-read-token-2e9b"
	adminFile, readFile, cfgFile := filepath.Join(dir, "admin"), filepath.Join(dir, "read"), filepath.Join(dir, "world.yaml")
	for f, s := range map[string]string{adminFile: adminToken, readFile: readToken, cfgFile: fmt.Sprintf(dashboardWorld, readFile)} {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := testenv.FreeAddr(t)
	base := "http://" + addr
	start(t, "mitosis agent", mitosis, "agent", "--simulate", "--config", cfgFile, "--listen", addr, "--token-file", adminFile)
	waitHTTP(t, base+"/-/ready", 20*time.Second)

	// The system's Chromium, headless, as root (no sandbox), only loopback;
	// its temporary files in a directory the test removes (short: its
	// singleton socket's path must fit a socket address).
	browserTmp, err := os.MkdirTemp("", "mx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(browserTmp) })
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1100), chromedp.UserDataDir(filepath.Join(dir, "chromium")),
		chromedp.Flag("proxy-server", "direct://"), chromedp.Flag("proxy-bypass-list", "*"),
		chromedp.Env("TMPDIR="+browserTmp),
	)...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancelTab()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromium, err)
	}
	shot := screenshot(t, ctx)
	defer func() {
		if t.Failed() {
			shot() // what the page showed when it failed
		}
	}()

	// The page, signed in by the fragment, shows the cluster's nodes.
	run(t, ctx, 15*time.Second, "opening the dashboard",
		chromedp.Navigate(base+"/#token="+url.QueryEscape(adminToken)),
		chromedp.WaitVisible(chromedp.CSS(`section[data-cluster="web"] .tree [data-node-id]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[data-action="clone"]`)))
	if fragment := value(t, ctx, "reading the address", chromedp.Evaluate[string](`location.hash`)); fragment != "" {
		t.Errorf("the token stays in the address bar: %q", fragment)
	}
	nodes := apiGet[[]plan.Node](t, base+"/v1/clusters/web/nodes", adminToken)
	if len(nodes) == 0 {
		t.Fatal("the agent has no node")
	}
	run(t, ctx, 5*time.Second, "finding the first node in the tree",
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`.tree [data-node-id=%q]`, nodes[0].ID))))

	// A clone through the API, of a ready node (retried while a budget
	// of operations in flight refuses it).
	template, op := cloneThroughAPI(t, base, adminToken)
	t.Logf("cloned %s through the API: operation %s", template, op)
	run(t, ctx, 15*time.Second, "the operation in the timeline",
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`section[data-cluster="web"] .ops [data-op-id=%q]`, op))))
	clone := waitOperation(t, base, adminToken, op, 20*time.Second)
	t.Logf("operation %s made %s", op, clone)
	run(t, ctx, 15*time.Second, "the clone in the tree under its template",
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`.tree li:has(> [data-node-id=%q]) > ul > li > [data-node-id=%q][data-parent=%q]`, template, clone, template))),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`.ops [data-op-id=%q][data-status="done"]`, op))))
	run(t, ctx, 10*time.Second, "the chart", chromedp.WaitVisible(chromedp.CSS(`svg.plot polyline[data-series="size"]`)))
	points := value(t, ctx, "the chart's points", chromedp.Evaluate[string](`document.querySelector('svg.plot').dataset.points`))
	t.Logf("the chart draws %s decisions", points)
	shot()

	// With a read token, in a tab of its own (its own session storage):
	// the same page, and no action offered.
	readCtx, cancelRead := chromedp.NewContext(ctx)
	defer cancelRead()
	if err := chromedp.Do(readCtx); err != nil { // opens the tab, for as long as readCtx lives
		t.Fatal(err)
	}
	run(t, readCtx, 15*time.Second, "the dashboard with a read token",
		chromedp.Navigate(base+"/#token="+url.QueryEscape(readToken)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`.tree [data-node-id=%q]`, clone))))
	who := value(t, readCtx, "who is signed in", chromedp.Evaluate[string](`document.getElementById('who').textContent`))
	buttons := value(t, readCtx, "the action buttons", chromedp.Evaluate[int](`document.querySelectorAll('button[data-action], .act').length`))
	if !strings.Contains(who, "read") || buttons != 0 {
		t.Errorf("with a read token: who %q, %d action buttons, want none", who, buttons)
	}
}

// run runs actions in the tab within d, failing the test with what it was
// doing and what the page said.
func run(t *testing.T, ctx context.Context, d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		text, _ := chromedp.Run(c, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
		t.Fatalf("%s: %v\nthe page says:\n%s", what, err, text)
	}
}

// value runs one action in the tab that answers a value.
func value[T any](t *testing.T, ctx context.Context, what string, action chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, action)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshot returns a function that saves a full-page screenshot of the
// tab to build/artifacts/dashboard.png (the last call wins).
func screenshot(t *testing.T, ctx context.Context) func() {
	return func() {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		if err != nil {
			t.Logf("screenshot: %v", err)
			return
		}
		out, err := filepath.Abs(filepath.Join("..", "build", "artifacts", "dashboard.png"))
		if err == nil {
			err = os.MkdirAll(filepath.Dir(out), 0o755)
		}
		if err == nil {
			err = os.WriteFile(out, png, 0o644)
		}
		if err != nil {
			t.Errorf("saving the screenshot: %v", err)
			return
		}
		t.Logf("screenshot: %s", out)
	}
}

// apiGet reads one API answer with a token.
func apiGet[T any](t *testing.T, u, token string) T {
	t.Helper()
	var v T
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return v
}

// cloneThroughAPI clones a ready node of the app role through the API and
// returns it and the operation started.
func cloneThroughAPI(t *testing.T, base, token string) (template, op string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var last string
		for _, n := range apiGet[[]plan.Node](t, base+"/v1/clusters/web/nodes", token) {
			if n.State != plan.NodeReady || n.Role != "app" {
				continue
			}
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/clusters/web/clone", strings.NewReader(fmt.Sprintf(`{"template": %q}`, n.ID)))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var rec plan.DecisionRecord
			err = json.NewDecoder(resp.Body).Decode(&rec)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusCreated && len(rec.Operations) == 1 {
				return n.ID, rec.Operations[0]
			}
			last = fmt.Sprintf("clone %s: %s %v", n.ID, resp.Status, rec.Reasons)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no clone through the API within 20 s; last: %s", last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitOperation waits for an expansion to finish and returns its clone.
func waitOperation(t *testing.T, base, token, id string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		op := apiGet[plan.Operation](t, base+"/v1/operations/"+id, token)
		switch {
		case op.Status == plan.OpDone && op.Node != "":
			return op.Node
		case op.Status != plan.OpRunning:
			t.Fatalf("operation %s: %s at %s: %s", id, op.Status, op.Step, op.Error)
		case time.Now().After(deadline):
			t.Fatalf("operation %s still %s at %s after %s", id, op.Status, op.Step, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
