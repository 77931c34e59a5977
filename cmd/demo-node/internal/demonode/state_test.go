package demonode

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-autoscaler/mitosis/node"
)

func TestStateRoundTrip(t *testing.T) {
	c := newClock()
	opts := AppOptions{ID: "web-1", CacheSize: 50, MissCost: 3, SessionIdle: 20 * time.Second, Now: c.now, unitRounds: 1}
	a := NewApp(opts)
	for _, k := range zipfKeys(3, 300, 100) {
		if _, _, err := a.admit(t.Context(), ""); err != nil {
			t.Fatal(err)
		}
		a.lookup(k)
		a.release()
		c.advance(100 * time.Millisecond) // the first sessions expire: only live ones are saved
	}
	snap := node.Snapshot{ID: "web-1", State: node.StatePrepared, Generation: 4, Operation: "op-7",
		Records: []node.Record{{Call: "prepare", Operation: "op-7", Reply: &node.PrepareReply{Accepted: true}}}}
	live := a.Sessions()
	saved := a.State(snap)
	file := filepath.Join(t.TempDir(), "s.state")
	if err := WriteState(filepath.Dir(file), file, saved); err != nil {
		t.Fatal(err)
	}
	read, err := ReadState(file)
	if err != nil {
		t.Fatal(err)
	}
	b := NewApp(opts)
	if err := b.Restore(read); err != nil {
		t.Fatal(err)
	}
	again := b.State(snap)

	if len(saved.Cache) != 50 || len(saved.Sessions) != live || live == 0 || live == 300 || len(saved.Recent) != 300 {
		t.Fatalf("saved %d entries, %d sessions, %d lookups: want a full cache, the %d live sessions, every lookup",
			len(saved.Cache), len(saved.Sessions), len(saved.Recent), live)
	}
	for i := range saved.Sessions {
		saved.Sessions[i].Inherited = true // what restoring adds
	}
	want, _ := json.Marshal(saved)
	got, _ := json.Marshal(again)
	if string(got) != string(want) {
		t.Errorf("restored state differs from the saved one:\n got %.300s\nwant %.300s", got, want)
	}
	if b.Warmth() != a.Warmth() || b.ID() != "web-1" || b.TakesNewSessions() {
		t.Errorf("restored warmth %+v id %s, want %+v web-1, taking no session until finalized", b.Warmth(), b.ID(), a.Warmth())
	}
	// Restored, the cache answers as the template's would.
	for _, e := range saved.Cache[:5] {
		if v, _, hit, _ := b.lookup(e.Key); !hit || v != e.Value {
			t.Errorf("key %s after restore: hit %v value %q, want the saved %q", e.Key, hit, v, e.Value)
		}
	}
}

func TestRestoreRefusesAnotherCostModel(t *testing.T) {
	a := NewApp(AppOptions{ID: "n", CacheSize: 10, MissCost: 3, SessionIdle: time.Minute})
	st := a.State(node.Snapshot{ID: "n", State: node.StateReady})
	b := NewApp(AppOptions{ID: "n", CacheSize: 10, MissCost: 4, SessionIdle: time.Minute})
	if err := b.Restore(st); err == nil || !strings.Contains(err.Error(), "miss cost") {
		t.Errorf("restore with another miss cost: %v, want refused", err)
	}
}

func TestSnapshotPathMustStayInsideTheStateDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "state")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{dir, outside, dir + "-evil"} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// A link inside the directory that leads out of it.
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	st := NewApp(AppOptions{ID: "n", CacheSize: 1, SessionIdle: time.Minute}).State(node.Snapshot{ID: "n"})
	for _, tc := range []struct {
		name, file string
		ok         bool
	}{
		{"a file in it", filepath.Join(dir, "a.state"), true},
		{"a file in a subdirectory", filepath.Join(dir, "sub", "b.state"), false}, // no such directory: an error, not an escape
		{"relative", "a.state", false},
		{"dot-dot", dir + "/../outside/x.state", false},
		{"dot-dot within", dir + "/sub/../../outside/x.state", false},
		{"the directory itself", dir, false},
		{"a sibling sharing its prefix", filepath.Join(dir+"-evil", "x.state"), false},
		{"elsewhere", filepath.Join(outside, "x.state"), false},
		{"through a symbolic link", filepath.Join(dir, "link", "x.state"), false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteState(dir, tc.file, st)
			if (err == nil) != tc.ok {
				t.Fatalf("WriteState(%q): %v, want ok %v", tc.file, err, tc.ok)
			}
		})
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("files written outside the state directory: %v", entries)
	}
	if entries, _ := os.ReadDir(dir + "-evil"); len(entries) != 0 {
		t.Errorf("files written in the sibling: %v", entries)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 { // a.state and link; no temporary file left
		t.Errorf("state directory holds %v, want a.state and link", entries)
	}
	if _, err := inside(dir, "/etc/passwd"); !errors.Is(err, errOutside) {
		t.Errorf("inside(/etc/passwd): %v, want errOutside", err)
	}
}

func TestSnapshotEndpoint(t *testing.T) {
	cfg := testConfig(t)
	h := start(t, cfg)
	file := filepath.Join(cfg.StateDir, "x.state")
	for _, tc := range []struct {
		name, path, token string
		want              int
	}{
		{"no token", "/-/snapshot?file=" + file, "", http.StatusUnauthorized},
		{"wrong token", "/-/snapshot?file=" + file, "nope", http.StatusUnauthorized},
		{"traversal", "/-/snapshot?file=" + cfg.StateDir + "/../x.state", testToken, http.StatusBadRequest},
		{"no file", "/-/snapshot", testToken, http.StatusBadRequest},
		{"inside", "/-/snapshot?file=" + file, testToken, http.StatusOK},
	} {
		if code, body := h.post(t, tc.path, tc.token); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg.StateDir), "x.state")); err == nil {
		t.Error("a traversal wrote its file")
	}
	if _, err := ReadState(file); err != nil {
		t.Errorf("the snapshot written: %v", err)
	}

	cfg.StateDir = ""
	off := start(t, cfg)
	if code, _ := off.post(t, "/-/snapshot?file="+file, testToken); code != http.StatusBadRequest {
		t.Errorf("a node without --state-dir: %d, want 400", code)
	}
}

// A snapshot path through a symbolic link that os.Root would not follow
// (out of the state directory, nowhere, or absolute) is the caller's
// mistake: 400 naming the file, nothing written. A relative link that
// stays inside is followed.
func TestSnapshotThroughALinkOutOfTheStateDirIsABadRequestNamingTheFile(t *testing.T) {
	cfg := testConfig(t)
	h := start(t, cfg)
	outside := t.TempDir()
	dir := cfg.StateDir
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"out":      outside,
		"out-rel":  "../" + filepath.Base(outside),
		"nowhere":  filepath.Join(outside, "gone"),
		"abs-in":   filepath.Join(dir, "sub"),
		"relative": "sub",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		file string
		want int
	}{
		{filepath.Join(dir, "out", "x.state"), http.StatusBadRequest},
		{filepath.Join(dir, "out", "deeper", "x.state"), http.StatusBadRequest},
		{filepath.Join(dir, "out-rel", "x.state"), http.StatusBadRequest},
		{filepath.Join(dir, "nowhere", "x.state"), http.StatusBadRequest},
		{filepath.Join(dir, "abs-in", "x.state"), http.StatusBadRequest},
		{filepath.Join(dir, "relative", "x.state"), http.StatusOK},
	} {
		code, body := h.post(t, "/-/snapshot?file="+url.QueryEscape(tc.file), testToken)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.file, code, body, tc.want)
			continue
		}
		var p node.Problem
		if code != http.StatusOK && (json.Unmarshal([]byte(body), &p) != nil || !strings.Contains(p.Error, tc.file) ||
			!strings.Contains(p.Error, "symbolic link")) {
			t.Errorf("%s: %s, want a JSON error naming the file and the link", tc.file, body)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("files written outside the state directory: %v", entries)
	}
	if _, err := ReadState(filepath.Join(dir, "sub", "x.state")); err != nil {
		t.Errorf("the snapshot through the relative link: %v", err)
	}
}

func TestSnapshotAnswersOtherMethodsWithAJSON405(t *testing.T) {
	h := start(t, testConfig(t))
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequestWithContext(t.Context(), method, h.srv.URL+"/-/snapshot", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p node.Problem
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost ||
			resp.Header.Get("Content-Type") != "application/json" || err != nil || p.Error == "" {
			t.Errorf("%s /-/snapshot: %d, Allow %q, Content-Type %q, %+v %v; want a JSON 405 allowing POST", method,
				resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"), p, err)
		}
	}
}
