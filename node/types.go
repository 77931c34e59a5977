// Package node holds the node API's wire types: what the controller and an
// application server say to each other when a node is prepared, cloned,
// resumed, finalized or detached.
//
// A node moves through these states (see the constants):
//
//	          prepare               clone made, template told to resume
//	 ready ───────────► preparing ──► prepared ─────────────────────► ready
//	   │                                  (refused: stays ready)
//	   │ detach
//	   ▼
//	detaching ──► detached (no sessions left)
//
//	a clone starts as "cloned" (inherited sessions, template's identity)
//	cloned ──finalize──► ready (own identity, sessions purged)
package node

import "time"

// State is a node's protocol state.
type State string

const (
	StateReady     State = "ready"
	StatePreparing State = "preparing"
	StatePrepared  State = "prepared"
	StateDetaching State = "detaching"
	StateDetached  State = "detached"
	StateCloned    State = "cloned"
)

// PrepareMode says what a template does with its pending sessions.
type PrepareMode string

const (
	PrepareSuspend PrepareMode = "suspend"
	PrepareEnd     PrepareMode = "end"
)

// Status is what a node reports about itself.
type Status struct {
	ID         string `json:"id"`
	State      State  `json:"state"`
	Sessions   int    `json:"sessions"`
	Ready      bool   `json:"ready"`
	Generation int    `json:"generation"`
	// Warmth figures, for template selection.
	CacheHitRatio float64 `json:"cache_hit_ratio"`
	UptimeSeconds float64 `json:"uptime_seconds"`
}

// PrepareRequest asks a template to get ready to be cloned.
type PrepareRequest struct {
	Operation string      `json:"operation"`
	Deadline  time.Time   `json:"deadline"`
	Mode      PrepareMode `json:"mode"`
}

// PrepareReply says whether the node accepted; a refusal carries a reason.
type PrepareReply struct {
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
}

// FinalizeRequest gives a clone its own identity.
type FinalizeRequest struct {
	Operation string `json:"operation"`
	ID        string `json:"id"`
	Address   string `json:"address"`
}
