package demonode

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mitosis-autoscaler/mitosis/node"
)

// stateVersion is the state file's format version.
const stateVersion = 1

// State is what a snapshot holds: everything a live clone of the node's
// memory would carry over.
type State struct {
	Version int `json:"version"`
	// Node is the node API's protocol state: id, state, generation,
	// operation and the calls it remembers.
	Node node.Snapshot `json:"node"`
	// Address is the advertised address, once a finalize gave one.
	Address string `json:"address,omitempty"`
	// Started is the uptime origin.
	Started time.Time `json:"started"`
	SavedAt time.Time `json:"saved_at"`
	// MissCost is the cost the values were computed with.
	MissCost int `json:"miss_cost"`
	// Cache holds the entries, most recently used first.
	Cache []CacheEntry `json:"cache"`
	// Recent is the hit-ratio window, oldest first: 'h' a hit, 'm' a miss.
	Recent   string    `json:"recent"`
	Sessions []session `json:"sessions"`
}

// CacheEntry is one cached value.
type CacheEntry struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// State returns the app's state, with the node API's protocol state
// (from node.Server.Save, which holds the server still meanwhile).
func (a *App) State(snap node.Snapshot) State {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	s := State{
		Version: stateVersion, Node: snap, Address: a.address,
		Started: a.started, SavedAt: now, MissCost: a.opts.MissCost,
		Sessions: a.sessions.list(now),
	}
	slices.SortFunc(s.Sessions, func(x, y session) int { return strings.Compare(x.ID, y.ID) })
	for _, e := range a.cache.entries() {
		s.Cache = append(s.Cache, CacheEntry{Key: e.key, Value: e.value})
	}
	var b strings.Builder
	for _, hit := range a.cache.recent() {
		if hit {
			b.WriteByte('h')
		} else {
			b.WriteByte('m')
		}
	}
	s.Recent = b.String()
	return s
}

// Restore makes the app a clone of the node s was saved from: its cache,
// window, sessions (marked inherited), identity and uptime origin. It
// serves nothing until it is finalized.
func (a *App) Restore(s State) error {
	if s.Version != stateVersion {
		return fmt.Errorf("state version %d: this node reads version %d", s.Version, stateVersion)
	}
	if s.MissCost != a.opts.MissCost {
		return fmt.Errorf("state computed with miss cost %d, this node has %d", s.MissCost, a.opts.MissCost)
	}
	if s.Node.ID == "" {
		return errors.New("state without an id")
	}
	entries := make([]entry, len(s.Cache))
	for i, e := range s.Cache {
		entries[i] = entry{key: e.Key, value: e.Value}
	}
	recent := make([]bool, len(s.Recent))
	for i, c := range s.Recent {
		recent[i] = c == 'h'
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cache.restore(entries, recent)
	clear(a.sessions.byID)
	for _, ss := range s.Sessions {
		ss.Inherited = true
		a.sessions.byID[ss.ID] = &ss
	}
	a.id, a.address, a.started, a.mode = s.Node.ID, s.Address, s.Started, cloned
	return nil
}

// ReadState reads a state file.
func ReadState(file string) (State, error) {
	var s State
	b, err := os.ReadFile(file)
	if err != nil {
		return s, fmt.Errorf("reading state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("reading state %s: %w", file, err)
	}
	return s, nil
}

// errOutside is a snapshot file outside the state directory, and
// errSnapshotsOff a snapshot asked of a node without one: the caller's
// mistakes, answered 400.
var (
	errOutside      = errors.New("must be a file inside the state directory")
	errSnapshotsOff = errors.New("snapshots are off: the node has no --state-dir")
)

// WriteState writes s to file, which must lie inside dir, atomically:
// a temporary file in the same directory, synced, then renamed over it.
// A path that is not inside dir, also through a symbolic link, is
// refused with an error wrapping errOutside. The writes go through an
// os.Root on dir, so that neither ".." nor a symbolic link leads out of
// it even if the directory changes meanwhile.
func WriteState(dir, file string, s State) error {
	rel, err := inside(dir, file)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening the state directory: %w", err)
	}
	defer root.Close()
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	tmp := rel + ".tmp-" + newID()[:8]
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing state %s: %w", file, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, rel)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("writing state %s: %w", file, err)
	}
	return nil
}

// inside returns file's path relative to dir, refusing with errOutside a
// path that is not absolute, not strictly below dir, or that goes
// through a symbolic link leading out of dir (or nowhere).
func inside(dir, file string) (string, error) {
	if dir == "" {
		return "", errSnapshotsOff
	}
	if !filepath.IsAbs(file) {
		return "", fmt.Errorf("file %q: must be an absolute path: %w", file, errOutside)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	rel, err := filepath.Rel(absDir, filepath.Clean(file))
	if err != nil || rel == "." || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("file %q: %w", file, errOutside)
	}
	if why := linkOut(absDir, rel); why != "" {
		return "", fmt.Errorf("file %q: %s: %w", file, why, errOutside)
	}
	return rel, nil
}

// linkOut follows the directories of rel below dir and says why the
// first symbolic link among them that os.Root would not follow is
// refused: one that leads out of dir, or nowhere, or has an absolute
// target (os.Root follows relative links only). It returns "" when there
// is none. The last element is not followed: the rename replaces a link
// there, it does not write through it. A directory that does not exist
// ends the walk (the write then fails on it); os.Root guards the write
// itself, also against a link that changes meanwhile.
func linkOut(dir, rel string) string {
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "" // the write fails on the directory itself
	}
	p := dir
	for _, part := range strings.Split(filepath.Dir(rel), string(filepath.Separator)) {
		if part == "." {
			break
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			break
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return p + " is a symbolic link that leads nowhere"
		}
		if r, err := filepath.Rel(realDir, real); err != nil || !(r == "." || filepath.IsLocal(r)) {
			return p + " is a symbolic link out of the state directory"
		}
		if target, err := os.Readlink(p); err == nil && filepath.IsAbs(target) {
			return p + " is a symbolic link to an absolute path (only relative links within the state directory are followed)"
		}
	}
	return ""
}
