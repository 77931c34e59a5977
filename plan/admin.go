package plan

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// What operators change through the API, kept in the registry so that
// every replica holds the same: a cluster's switches, the policy pushed,
// and the audit trail of every write.

// ClusterSettings are an operator's switches for one cluster.
type ClusterSettings struct {
	// Paused: the cluster's ticks decide nothing (operations in flight
	// still finish).
	Paused bool `json:"paused"`
	// DryRun, when set, overrides the configuration's dry_run for the
	// cluster.
	DryRun *bool `json:"dry_run,omitempty"`
	// By and At: the last change.
	By string    `json:"by,omitempty"`
	At time.Time `json:"at,omitzero"`
}

// AuditRecord is one write an operator made: who, what, when.
type AuditRecord struct {
	Seq     uint64    `json:"seq"`
	At      time.Time `json:"at"`
	By      string    `json:"by"`
	Cluster string    `json:"cluster,omitempty"`
	// Action names the write: clone, detach, pause, resume, dry-run,
	// policy-push.
	Action string `json:"action"`
	Detail string `json:"detail,omitempty"`
}

// PolicyVersion is a policy pushed through the API: its files, so that
// every replica decides with the same one.
type PolicyVersion struct {
	Version string            `json:"version"`
	Files   map[string]string `json:"files"`
	By      string            `json:"by"`
	At      time.Time         `json:"at"`
}

// AuditHistory is how many audit records a Ledger keeps (it trims in
// bulk, so it may hold up to twice as many); PolicyHistory how many
// pushed policy versions.
const (
	AuditHistory  = 1024
	PolicyHistory = 8
)

// PutSettings replaces a cluster's switches and records the audit record
// of the change, at once.
func (l *Ledger) PutSettings(cluster string, s ClusterSettings, a AuditRecord) error {
	if cluster == "" {
		return fmt.Errorf("settings need a cluster")
	}
	l.init()
	if s.DryRun != nil {
		v := *s.DryRun
		s.DryRun = &v
	}
	l.settings[cluster] = s
	l.audit(a)
	return nil
}

// Audit records a write that has no other record.
func (l *Ledger) Audit(a AuditRecord) {
	l.init()
	l.audit(a)
}

func (l *Ledger) audit(a AuditRecord) {
	l.seq++
	a.Seq = l.seq
	l.audits = append(l.audits, a)
	if len(l.audits) >= 2*AuditHistory {
		l.audits = slices.Delete(l.audits, 0, len(l.audits)-AuditHistory)
	}
}

// Audits returns up to limit of the latest audit records, newest first.
func (l *Ledger) Audits(limit int) []AuditRecord {
	out := make([]AuditRecord, 0, max(0, min(limit, len(l.audits))))
	for i := len(l.audits) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, l.audits[i])
	}
	return out
}

// PutPolicy records a pushed policy version, the one to decide with from
// now on, and its audit record.
func (l *Ledger) PutPolicy(p PolicyVersion, a AuditRecord) error {
	if p.Version == "" || len(p.Files) == 0 {
		return fmt.Errorf("a policy version needs a version and files")
	}
	l.init()
	p.Files = maps.Clone(p.Files)
	l.policies = append(l.policies, p)
	if len(l.policies) > PolicyHistory {
		l.policies = slices.Delete(l.policies, 0, len(l.policies)-PolicyHistory)
	}
	l.audit(a)
	return nil
}

// Policy returns the policy pushed last; ok is false if none was.
func (l *Ledger) Policy() (p PolicyVersion, ok bool) {
	if len(l.policies) == 0 {
		return PolicyVersion{}, false
	}
	p = l.policies[len(l.policies)-1]
	p.Files = maps.Clone(p.Files)
	return p, true
}

// Policies returns the versions pushed, newest first, without their files.
func (l *Ledger) Policies() []PolicyVersion {
	out := make([]PolicyVersion, 0, len(l.policies))
	for i := len(l.policies) - 1; i >= 0; i-- {
		p := l.policies[i]
		p.Files = nil
		out = append(out, p)
	}
	return out
}
